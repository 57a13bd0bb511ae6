"""A program's own flags, grouped: its `--help` text and the tables of docs/flags.md.

Both are generated from the flags a program defines (for the settings, from their one
declaration in `keras_siamese.config`), so they cannot drift from the code:

    python -m keras_siamese.programs.flags_doc > docs/flags.md
"""

from __future__ import annotations

import textwrap

from absl import flags

# The groups of each settings class's flags, in the order help and docs/flags.md show
# them. A program's other flags (such as --mode) are listed under `PROGRAM_GROUP`.
TRAIN_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Run and data",
        (
            "workdir",
            "dataset",
            "data_dir",
            "data_source",
            "split",
            "split_order",
            "split_seed",
            "unseen_classes",
            "unseen_classes_file",
            "val_fraction",
            "seed",
            "init_from",
        ),
    ),
    (
        "Your own images (--dataset=folder)",
        ("image_size", "channels", "test_fraction", "skip_bad_images"),
    ),
    ("Tower", ("depth", "embedding", "embedding_dim", "pool_grid", "neck", "l2_normalize")),
    (
        "Objective and loss",
        (
            "objective",
            "distance",
            "margin",
            "soft_margin",
            "selective_contrast",
            "root_distance",
            "semihard_rule",
            "mining_warmup_epochs",
            "classes_per_batch",
            "images_per_class",
            "classifier_weight",
            "pair_head",
            "logit_scale",
            "class_margin",
            "label_smoothing",
        ),
    ),
    (
        "Optimisation and schedule",
        (
            "learning_rate",
            "optimizer",
            "momentum",
            "weight_decay",
            "lr_schedule",
            "warmup_epochs",
            "batch_size",
            "epochs",
            "steps_per_epoch",
            "time_budget_minutes",
            "snapshot_every",
        ),
    ),
    (
        "Augmentation and regularisation",
        (
            "flip",
            "crop",
            "mixup",
            "cutmix",
            "rotation_weight",
            "ema_decay",
            "distill_from",
            "distill_weight",
            "distill_temperature",
        ),
    ),
    ("Export options", ("tta", "center")),
    (
        "Speed and devices",
        ("precision", "fused_batch_norm", "concat_tower", "jit_compile", "strategy"),
    ),
)
TUNE_GROUPS = (
    (
        "Hyperparameter search (--mode=tune)",
        ("tuner", "max_trials", "val_classes", "tune_distance", "tune_embedding_dim"),
    ),
)
EVAL_GROUPS = (
    (
        "Evaluation",
        (
            "workdir",
            "export",
            "data_dir",
            "data_source",
            "seed",
            "ways",
            "shots",
            "batch_size",
            "snapshots",
            "tta",
            "center",
            "projector",
            "projector_seen",
        ),
    ),
    ("Report (--report)", ("report", "runs_dir", "out")),
)
# The module name under which `cli.define_flags` registers each settings class's flags.
GROUPS_OF_MODULE = {
    "keras_siamese.config.TrainConfig": TRAIN_GROUPS,
    "keras_siamese.config.TuneConfig": TUNE_GROUPS,
    "keras_siamese.config.EvalConfig": EVAL_GROUPS,
}
PROGRAM_GROUP = "Program"


def grouped_flags(flag_values: flags.FlagValues) -> list[tuple[str, list[flags.Flag]]]:
    """A program's own flags (absl's left out) by group, each group in declaration order."""
    result: list[tuple[str, list[flags.Flag]]] = []
    program: list[flags.Flag] = []
    seen: set[str] = set()
    for module, module_flags in flag_values.flags_by_module_dict().items():
        if module.startswith("absl."):
            continue
        module_flags = [f for f in module_flags if f.name not in seen]
        seen.update(f.name for f in module_flags)
        groups = GROUPS_OF_MODULE.get(module)
        if groups is None:
            program += module_flags
            continue
        by_name = {f.name: f for f in module_flags}
        for title, names in groups:
            group = [by_name.pop(name) for name in names if name in by_name]
            if group:
                result.append((title, group))
        if by_name:  # a new setting that no group names yet
            result.append(("Other settings", list(by_name.values())))
    if program:
        result.append((PROGRAM_GROUP, program))
    return result


def flag_meaning(flag: flags.Flag) -> str:
    """A flag's help without the `<a|b|c>: ` that absl puts before an enum's."""
    text = flag.help
    if text.startswith("<") and ">: " in text:
        text = text.split(">: ", 1)[1]
    return text


def default_text(flag: flags.Flag) -> str:
    """A flag's default as a user types it."""
    value = flag.default
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def help_text(doc: str, flag_values: flags.FlagValues) -> str:
    """`--help`: the program's description, then its flags by group with defaults."""
    lines = [textwrap.dedent(doc).strip(), ""]
    for title, group in grouped_flags(flag_values):
        lines.append(f"{title}:")
        for flag in group:
            choices = getattr(flag.parser, "enum_values", None)
            kind = "|".join(choices) if choices else flag.flag_type()
            lines.append(f"  --{flag.name}  ({kind}, default: {default_text(flag)})")
            for row in textwrap.wrap(flag_meaning(flag), width=88):
                lines.append(f"      {row}")
        lines.append("")
    lines.append("absl's own flags too: --helpfull. Bool flags take --name or --noname.")
    return "\n".join(lines)


def markdown_table(flag_values: flags.FlagValues) -> str:
    """The program's flags as Markdown: a table per group."""
    lines = []
    for title, group in grouped_flags(flag_values):
        lines += [f"### {title}", "", "| flag | default | meaning |", "| --- | --- | --- |"]
        for flag in group:
            meaning = flag_meaning(flag).replace("|", "\\|")
            lines.append(f"| `--{flag.name}` | `{default_text(flag)}` | {meaning} |")
        lines.append("")
    return "\n".join(lines)
