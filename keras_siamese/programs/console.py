"""`keras-siamese`: one command for every program, `keras-siamese SUBCOMMAND [flags]`."""

from __future__ import annotations

import sys

from keras_siamese.programs import canvas, evaluate, export, search, train

# Subcommand name -> program module, in the order the command lists them; `demo` runs
# `train` then `eval` on the package's demo settings.
PROGRAMS = {
    "train": train,
    "eval": evaluate,
    "search": search,
    "canvas": canvas,
    "export": export,
}
SUBCOMMANDS = (*PROGRAMS, "demo")


def _usage() -> str:
    return (
        f"usage: keras-siamese {{{','.join(SUBCOMMANDS)}}} [flags]; "
        "keras-siamese SUBCOMMAND --help lists its flags."
    )


def _help() -> str:
    """The usage line, what each subcommand does, and the first command to run."""
    from keras_siamese.programs import demo

    lines = [_usage(), "", "subcommands:"]
    for name, module in {**PROGRAMS, "demo": demo}.items():
        summary = (module.__doc__ or "").strip().splitlines()[0]
        lines.append(f"  {name:<7} {summary}")
    lines += [
        "",
        "Start with the demo (offline, a minute on a CPU), then the fast recipe on CIFAR-100:",
        "  keras-siamese demo --workdir=runs/demo",
        "  keras-siamese train --flagfile=flags/fast.flags --split=90_10 --data_dir=DIR "
        "--workdir=runs/fast",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Runs the subcommand named by `argv[1]` with the rest of the arguments."""
    argv = list(sys.argv if argv is None else argv)
    if len(argv) > 1 and argv[1] in ("--help", "-h"):
        print(_help())
        sys.exit(0)
    if len(argv) < 2 or argv[1] not in SUBCOMMANDS:
        given = f"unknown subcommand {argv[1]!r}" if len(argv) > 1 else "no subcommand"
        print(f"error: {given}: {_usage()}", file=sys.stderr)
        sys.exit(2)
    name = argv[1]
    sys.argv = [f"keras-siamese {name}", *argv[2:]]
    if name == "demo":
        from keras_siamese.programs import demo

        demo.main()
        return
    PROGRAMS[name].main()


if __name__ == "__main__":
    main()
