"""The command-line contract, in process: flags generated from the declared settings,
every bad setting refused in one line, and the flagfiles of the repository valid."""

from __future__ import annotations

import dataclasses
import glob
import os
import subprocess
import sys

import pytest
from absl import flags

from keras_siamese import cli, flag_help
from keras_siamese.config import TrainConfig, TuneConfig
from keras_siamese.evaluation.settings import EvalConfig
from keras_siamese.programs import flags_doc
from tests.conftest import ROOT, program_error, program_flags, run_main, train_error


@pytest.mark.parametrize("config_class", [TrainConfig, TuneConfig, EvalConfig])
def test_every_setting_is_a_flag_with_its_default_help_and_choices(config_class):
    fv = flags.FlagValues()
    cli.define_flags(config_class, fv)
    fv(["prog"])
    for field in dataclasses.fields(config_class):
        flag = fv[field.name]
        assert flag.help.endswith(field.metadata["help"]) and field.metadata["help"]
        choices = field.metadata["choices"]
        if choices:
            assert tuple(flag.parser.enum_values) == choices
    # With no flags given, the flags describe the declared defaults.
    assert cli.config_from_flags(config_class, fv) == config_class()


def test_helpfull_shows_every_setting_with_its_help_and_choices():
    fv = program_flags(
        "train_main",
    )
    text = fv.get_help()
    for config_class in (TrainConfig, TuneConfig):
        for field in dataclasses.fields(config_class):
            assert f"--{field.name}" in text or f"--[no]{field.name}" in text
    assert "<cosine|euclidean>" in text and "Distance of the triplet loss." in text
    assert "--mode: <train|tune>" in text and "--[no]overwrite" in text


def test_a_written_flagfile_reproduces_its_configuration(tmp_path):
    config = TrainConfig(
        workdir=str(tmp_path), split="80_20", distance="euclidean", depth=20, flip=False
    )
    path = tmp_path / "config.flags"
    path.write_text(config.to_flagfile())
    parsed = cli.config_from_flags(TrainConfig, program_flags("train_main", f"--flagfile={path}"))
    assert parsed == dataclasses.replace(config, margin=1.0)  # the resolved default margin


@pytest.mark.parametrize(
    "path", sorted(glob.glob(os.path.join(ROOT, "flags", "*.flags"))), ids=os.path.basename
)
def test_every_flagfile_of_the_repository_is_valid(path, tmp_path):
    # A folder recipe needs the user's folder: any existing one passes the checks.
    data = [f"--data_dir={tmp_path}"] if "small_folder" in path else []
    fv = program_flags("train_main", f"--flagfile={path}", f"--workdir={tmp_path}", *data)
    config = cli.config_from_flags(TrainConfig, fv)
    config.validate()
    if fv.mode == "tune":
        cli.config_from_flags(TuneConfig, fv).validate(config)


def test_the_split_flagfiles_keep_the_reference_protocol():
    fv = program_flags(
        "train_main", f"--flagfile={os.path.join(ROOT, 'flags', '90_10.flags')}", "--workdir=w"
    )
    config = cli.config_from_flags(TrainConfig, fv)
    # The defaults are the reference protocol; the flagfiles add bfloat16 where the CPU has it.
    reference = TrainConfig(workdir="w", split="90_10", precision="auto")
    assert config == reference


@pytest.mark.parametrize(
    "args, message",
    [
        (["--split=95_10"], "must sum to 100"),
        (["--split=abc"], "not of the form SEEN_UNSEEN"),
        (["--distance=manhattan"], "should be one of"),
        (["--margin=-1"], "must be greater than 0"),
        (["--depth=10"], "6n+2"),
        (["--batch_size=0"], "at least 1"),
        (["--unknown_flag=3"], "unknown_flag"),
        (["stray"], "unexpected argument(s) stray"),
        (["--objective=batch_hard", "--images_per_class=1"], "must be at least 2"),
        (["--objective=batch_semihard", "--classes_per_batch=95"], "exceeds the 90 seen classes"),
        (["--objective=contrastive", "--batch_size=33"], "must be even"),
        (["--objective=batch_most"], "should be one of"),
        (["--val_fraction=1"], "must be in [0, 1)"),
        (["--learning_rate=0"], "must be greater than 0"),
        (["--steps_per_epoch=-1"], "must be 0"),
        (["--time_budget_minutes=-1"], "must be 0 (no budget) or positive"),
        (["--snapshot_every=-2"], "must be 0 (no snapshots) or positive"),
        (["--embedding_dim=0"], "must be at least 1"),
        (["--soft_margin"], "--soft_margin is for --objective=batch_hard, not --objective=triplet"),
        (
            ["--objective=batch_hard", "--distance=euclidean", "--selective_contrast"],
            "--selective_contrast is for --objective=batch_hard with --distance=cosine",
        ),
        (["--root_distance"], "--root_distance is for the batch_* objectives, not --objective=tri"),
        (
            ["--objective=batch_hard", "--selective_contrast", "--root_distance"],
            "--selective_contrast compares cosines, so it does not take --root_distance",
        ),
        (["--mining_warmup_epochs=2"], "is for --objective=batch_hard, not --objective=triplet"),
        (
            ["--objective=batch_hard", "--epochs=3", "--mining_warmup_epochs=3"],
            "must be 0 or positive and shorter than the run's --epochs=3",
        ),
        (["--objective=batch_hard", "--mining_warmup_epochs=-1"], "must be 0 or positive"),
        (["--classifier_weight=1"], "--classifier_weight is for the batch_* objectives, not"),
        (["--objective=batch_hard", "--classifier_weight=-1"], "-1.0 must be 0 or positive"),
        (["--pool_grid=0"], "--pool_grid=0 must be from 1 to 8"),
        (["--dataset=mnist", "--split=6_4", "--pool_grid=8"], "must be from 1 to 7"),
        (
            ["--objective=normsoftmax", "--logit_scale=0"],
            "--logit_scale=0.0 must be greater than 0",
        ),
        (["--label_smoothing=1"], "--label_smoothing=1.0 must be in [0, 1)"),
        (["--label_smoothing=-0.1"], "must be in [0, 1)"),
        (["--optimizer=rmsprop"], "should be one of"),
        (["--lr_schedule=step"], "should be one of"),
        (["--weight_decay=-1"], "--weight_decay=-1.0 must be 0 or positive"),
        (["--optimizer=adamw"], "needs --weight_decay above 0"),
        (["--optimizer=sgd", "--momentum=1"], "--momentum=1.0 must be in [0, 1)"),
        (["--warmup_epochs=1"], "needs --lr_schedule=cosine or onecycle"),
        (["--objective=normsoftmax", "--mixup=-1"], "--mixup=-1.0 must be 0 (off) or a positive"),
        (["--objective=softmax", "--cutmix=nan"], "--cutmix=nan must be 0 (off) or a positive"),
        (["--mixup=0.2"], "it is for --objective=softmax or normsoftmax, not --objective=triplet"),
        (["--objective=batch_hard", "--cutmix=1"], "not --objective=batch_hard"),
        (["--ema_decay=1"], "--ema_decay=1.0 must be in [0, 1)"),
        (["--semihard_rule=tensorflow"], "--semihard_rule is for --objective=batch_semihard, not"),
        (["--objective=batch_semihard", "--semihard_rule=tf"], "should be one of"),
        (["--ema_decay=-0.5"], "--ema_decay=-0.5 must be in [0, 1)"),
        (["--lr_schedule=cosine", "--warmup_epochs=3", "--epochs=3"], "must be shorter"),
        (
            ["--ms_alpha=3"],
            "--ms_alpha is for --objective=multi_similarity, not --objective=triplet",
        ),
        (
            ["--objective=ntxent", "--ntxent_temperature=0"],
            "--ntxent_temperature=0.0 must be greater",
        ),
        (["--objective=circle", "--circle_m=2"], "--circle_m=2.0 must be from 0 to 1"),
        (["--objective=arcface", "--arcface_margin=95"], "must be in [0, 90) degrees"),
        (
            ["--objective=subcenter_arcface", "--sub_centers=0"],
            "--sub_centers=0 must be at least 1",
        ),
        (["--objective=proxy_nca", "--proxy_lr_multiplier=0"], "must be greater than 0"),
        (["--objective=arcface", "--sub_centers=2"], "is for --objective=subcenter_arcface, not"),
        (["--objective=arcface", "--mixup=0.2"], "or normsoftmax, not --objective=arcface"),
        (["--objective=supcon", "--classifier_weight=1"], "--classifier_weight is for the batch_*"),
        (["--objective=supcon", "--images_per_class=1"], "must be at least 2"),
        (
            ["--objective=supcon", "--memory_size=100"],
            "--memory_size=100 is smaller than a batch of 128 images",
        ),
        (
            ["--objective=arcface", "--memory_size=512"],
            "--memory_size pairs each batch with earlier images: it is for --objective=multi_"
            "similarity, circle, ntxent, supcon or lifted_structure, not --objective=arcface.",
        ),
        (["--objective=circle", "--memory_warmup_steps=5"], "is for a run with --memory_size"),
    ],
)
def test_bad_training_flags_are_one_line(capsys, tmp_path, args, message):
    line = train_error(capsys, f"--workdir={tmp_path / 'run'}", *args)
    assert message in line
    assert not (tmp_path / "run").exists()


def test_a_missing_workdir_is_one_line(capsys):
    assert "--workdir is required" in train_error(capsys)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tuner=grid"], "should be one of"),
        (["--max_trials=0"], "--max_trials=0 must be at least 1"),
        (["--val_classes=89"], "leaves fewer than 2 of the 90 seen classes"),
        (["--val_classes=1"], "must be at least 2"),
        (["--tune_embedding_dim"], "needs --embedding=dense"),
        (["--strategy=multi_worker"], "cannot use --strategy=multi_worker"),
        (["--init_from=runs/any/export"], "--init_from is for training runs"),
        (
            ["--objective=batch_hard", "--classes_per_batch=85"],
            "exceeds the 80 classes left to train on",
        ),
    ],
)
def test_bad_search_flags_are_one_line(capsys, tmp_path, args, message):
    line = train_error(capsys, "--mode=tune", f"--workdir={tmp_path / 'run'}", *args)
    assert message in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--workdir=nowhere", "--shots=1,x"], "--shots=1,x must be whole numbers"),
        (["--workdir=nowhere", "--shots=0"], "--shots=0 must be at least 1 each"),
        (["--workdir=nowhere", "--ways=1"], "--ways=1 must be at least 2"),
        (["--workdir=nowhere"], "--workdir=nowhere is not a folder"),
        (["--workdir=nowhere", "--data_source=ftp"], "should be one of"),
        (["--report", "--runs_dir=/nonexistent"], "--runs_dir=/nonexistent is not a folder"),
        ([], "--workdir is required"),
    ],
)
def test_bad_evaluation_flags_are_one_line(capsys, args, message):
    assert message in program_error(capsys, "eval_main", *args)


def test_a_folder_without_an_export_is_one_line(capsys, tmp_path):
    assert "holds no complete export" in program_error(capsys, "eval_main", f"--workdir={tmp_path}")


def test_a_report_without_evaluations_is_one_line(capsys, tmp_path):
    line = program_error(
        capsys, "eval_main", "--report", f"--runs_dir={tmp_path}", f"--out={tmp_path / 'x'}"
    )
    assert "holds no eval.json" in line
    assert not (tmp_path / "x").exists()


def test_docs_flags_md_is_what_the_flag_definitions_generate():
    with open(os.path.join(ROOT, "docs", "flags.md"), encoding="utf-8") as f:
        committed = f.read()
    assert committed == flags_doc.flags_document(), (
        "docs/flags.md is stale: python -m keras_siamese.programs.flags_doc > docs/flags.md"
    )


@pytest.mark.parametrize("program", ["train_main", "eval_main"])
def test_every_setting_has_a_named_group_in_the_help(program):
    fv = program_flags(program)
    groups = flag_help.grouped_flags(fv)
    titles = [title for title, _ in groups]
    assert "Other settings" not in titles
    listed = [flag.name for _, group in groups for flag in group]
    assert len(listed) == len(set(listed))
    classes = (TrainConfig, TuneConfig) if program == "train_main" else (EvalConfig,)
    for config_class in classes:
        for field in dataclasses.fields(config_class):
            assert field.name in listed


@pytest.mark.parametrize(
    "script,own_flag,group",
    [
        ("train_main.py", "--rotation_weight", "Augmentation and regularisation:"),
        ("eval_main.py", "--ways", "Evaluation:"),
        ("search_main.py", "--backend", "Program:"),
        ("canvas_main.py", "--threshold", "Program:"),
    ],
)
def test_help_lists_the_programs_own_flags_and_exits_0(script, own_flag, group):
    result = run_main(script, "--help")
    assert result.returncode == 0, result.stderr
    assert own_flag in result.stdout and group in result.stdout
    assert "only_check_args" not in result.stdout  # absl's own stay in --helpfull
    assert result.stderr == ""
    full = run_main(script, "--helpfull")
    assert full.returncode == 0 and own_flag in full.stdout and "only_check_args" in full.stdout


def test_keras_siamese_runs_a_subcommand_and_refuses_an_unknown_one():
    command = [sys.executable, "-m", "keras_siamese.programs.console"]
    ok = subprocess.run([*command, "eval", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0 and "--ways" in ok.stdout
    for args in ([], ["fit"]):
        bad = subprocess.run([*command, *args], capture_output=True, text=True, cwd=ROOT)
        assert bad.returncode == 2 and bad.stdout == ""
        lines = bad.stderr.strip().splitlines()
        assert len(lines) == 1 and "train,eval,search,canvas,export,demo" in lines[0]


def test_keras_siamese_help_says_what_each_subcommand_does(capsys):
    from keras_siamese.programs import console, demo

    with pytest.raises(SystemExit) as stop:
        console.main(["keras-siamese", "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    for name, module in {**console.PROGRAMS, "demo": demo}.items():
        summary = module.__doc__.strip().splitlines()[0]
        assert f"  {name:<7} {summary}" in out
    assert "--flagfile=flags/fast.flags" in out and "keras-siamese demo" in out
