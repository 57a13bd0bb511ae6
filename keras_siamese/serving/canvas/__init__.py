"""The similarity canvas: a web page that asks an exported model about drawings.

python -m keras_siamese.canvas --export=runs/demo/export
"""
