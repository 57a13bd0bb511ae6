"""The similarity canvas: a web page that asks an exported model about drawings.

python canvas_main.py --export=runs/demo/export
"""
