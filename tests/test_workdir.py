import json
import os
import threading

import pytest

from keras_siamese import files, workdir
from keras_siamese.errors import ConfigError, UserError
from tests.conftest import ROOT

FLAGS_A = "--workdir=/somewhere\n--data_dir=/data\n--split=90_10\n--margin=0.3\n"
FLAGS_B = "--workdir=/elsewhere\n--data_dir=/other\n--split=80_20\n--margin=0.3\n"


def test_prepare_claims_the_folder_and_accepts_the_same_config_elsewhere(tmp_path):
    run = tmp_path / "run"
    workdir.prepare(str(run), FLAGS_A)
    assert (run / "config.flags").read_text() == FLAGS_A
    # Moving the data or the folder does not change the run.
    moved = FLAGS_A.replace("/data", "/mnt/data")
    workdir.prepare(str(run), moved)


def test_workers_claiming_one_folder_at_once_all_succeed(tmp_path):
    # The workers of a multi-worker run prepare the same folder at the same moment.
    for attempt in range(20):
        target = str(tmp_path / f"run{attempt}")
        barrier = threading.Barrier(4)
        failures = []

        def claim(target=target, barrier=barrier, failures=failures):
            barrier.wait()
            try:
                workdir.prepare(target, FLAGS_A)
            except ConfigError as e:
                failures.append(str(e))

        threads = [threading.Thread(target=claim) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        assert sorted(os.listdir(target)) == [workdir.CONFIG_FILE]


def test_prepare_refuses_another_configuration_without_overwrite(tmp_path):
    run = tmp_path / "run"
    workdir.prepare(str(run), FLAGS_A)
    (run / "metrics.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"another configuration .*--split=80_20.*--overwrite"):
        workdir.prepare(str(run), FLAGS_B)
    assert (run / "config.flags").read_text() == FLAGS_A
    assert (run / "metrics.json").exists()


def test_a_setting_newer_than_the_run_counts_as_equal_only_at_its_default(tmp_path):
    run = tmp_path / "run"
    workdir.prepare(str(run), FLAGS_A)  # written before --neck and --flip existed
    workdir.check(str(run), FLAGS_A + "--neck=none\n--flip\n")  # the defaults: same run
    with pytest.raises(ConfigError, match="differs in --neck=batchnorm"):
        workdir.check(str(run), FLAGS_A + "--neck=batchnorm\n")
    with pytest.raises(ConfigError, match="differs in --noflip"):
        workdir.check(str(run), FLAGS_A + "--noflip\n")
    # A setting the old run recorded must match, default or not.
    workdir.prepare(str(run), FLAGS_A + "--neck=batchnorm\n", overwrite=True)
    with pytest.raises(ConfigError, match="differs in --neck=none"):
        workdir.check(str(run), FLAGS_A + "--neck=none\n")


def test_overwrite_removes_the_old_run_and_nothing_else(tmp_path):
    run = tmp_path / "run"
    workdir.prepare(str(run), FLAGS_A)
    (run / "export").mkdir()
    (run / "export" / "saved_model.pb").write_text("x")
    (run / "history.csv").write_text("epoch,loss\n0,1.0\n")
    (run / "notes.txt").write_text("mine")
    workdir.prepare(str(run), FLAGS_B, overwrite=True)
    assert sorted(os.listdir(run)) == ["config.flags", "notes.txt"]
    assert (run / "config.flags").read_text() == FLAGS_B


def test_workdir_that_is_a_file_or_unwritable_is_refused(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        workdir.prepare(str(a_file), FLAGS_A)
    with pytest.raises(ConfigError, match="not writable"):
        workdir.prepare(str(a_file / "run"), FLAGS_A)


def test_resume_epoch_reads_the_backup(tmp_path):
    assert workdir.resume_epoch(str(tmp_path)) == 0
    (tmp_path / "backup").mkdir()
    meta = tmp_path / "backup" / "training_metadata.json"
    meta.write_text(json.dumps({"epoch": 3, "batch": 0}))
    assert workdir.resume_epoch(str(tmp_path)) == 3
    meta.write_text("{trunc")
    with pytest.raises(UserError, match="unreadable"):
        workdir.resume_epoch(str(tmp_path))


def test_trim_history_keeps_each_epoch_once(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss\n0,0.5\n1,0.4\n2,0.3\n")
    workdir.trim_history(str(tmp_path), 2)
    assert path.read_text() == "epoch,loss\n0,0.5\n1,0.4\n"
    workdir.trim_history(str(tmp_path), 0)
    assert not path.exists()


def test_interrupted_directory_replace_is_restored(tmp_path):
    target = tmp_path / "export"
    target.mkdir()
    (target / "metadata.json").write_text("old")
    # The state a kill between the two renames leaves: old folder aside, none in place.
    os.replace(target, tmp_path / ".export.previous")
    files.restore_interrupted_replace(str(target))
    assert (target / "metadata.json").read_text() == "old"
    assert not (tmp_path / ".export.previous").exists()


def test_a_folder_in_use_by_another_run_is_refused_and_left_alone(tmp_path):
    import subprocess
    import sys

    run = str(tmp_path / "run")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from keras_siamese import workdir as wd; "
            "wd.prepare(sys.argv[1], sys.argv[2], exclusive=True); print('held', flush=True); "
            "sys.stdin.read()",
            run,
            FLAGS_A,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(ConfigError, match="is in use by another training run"):
            workdir.prepare(run, FLAGS_A.replace("0.3", "0.5"), overwrite=True, exclusive=True)
        # Refused before it replaced anything. Unlocked claims (the workers of a
        # multi-worker run share one folder) are still let in.
        assert (tmp_path / "run" / "config.flags").read_text() == FLAGS_A
        workdir.prepare(run, FLAGS_A)
    finally:
        holder.communicate("", timeout=60)
    # Once its holder has ended, the folder is free; this process may claim it again.
    workdir.prepare(run, FLAGS_A, exclusive=True)
    workdir.prepare(run, FLAGS_A, exclusive=True)
    workdir.release(run)
    workdir.release(run)
