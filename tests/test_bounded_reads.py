"""What circuitep reads is bounded before it is read (issue 14): no hang on a FIFO, no memory
filled by ``/dev/zero`` or a decompression bomb, whatever file a path names.

Each case runs the real command line on a real file (a FIFO made with ``os.mkfifo``, the device
``/dev/zero``, a sparse file one byte past the limit) in a child process with a time limit, so a
regression shows as a timeout instead of a machine that swaps.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from circuitep.cli import main
from circuitep.specio import MAX_SPEC_BYTES

ROOT = Path(__file__).resolve().parent.parent
# a child's address space: far more than circuitep needs, far less than reading /dev/zero takes
MEMORY_LIMIT = 2 << 30


def in_child(calls: list[list[str]], timeout: float = 60) -> list[tuple[int, str]]:
    """Run ``circuitep ARGV`` for each ARGV of ``calls`` in one child process (MEMORY_LIMIT of
    address space, ``timeout`` seconds in all); the exit code and standard error of each."""
    code = f"""
import contextlib, io, json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT}))
from circuitep.cli import main
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    print(json.dumps([code, err.getvalue()]), flush=True)
"""
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(calls)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [tuple(json.loads(line)) for line in done.stdout.splitlines()]


def test_a_spec_that_is_not_a_regular_file_or_too_large_is_refused_unread(tmp_path):
    fifo, huge = tmp_path / "fifo.toml", tmp_path / "huge.toml"
    os.mkfifo(fifo)
    with open(huge, "wb") as f:  # sparse: no disk space, no time
        f.truncate(MAX_SPEC_BYTES + 1)
    cases = {
        "/dev/zero": "is a device, not a regular file; give the path of a file",
        str(fifo): "is a FIFO, not a regular file; give the path of a file",
        str(tmp_path): "is a directory, not a regular file; give the path of a file",
        str(huge): f"is larger than {MAX_SPEC_BYTES:,} bytes, more than any spec file "
        "circuitep reads; check the path",
    }
    results = in_child([["compile", path] for path in cases], timeout=30)
    for (path, message), (code, err) in zip(cases.items(), results, strict=True):
        assert code == 2, (path, err)
        assert err == f"circuitep: error: spec file {path!r} {message}\n", err


def test_run_files_that_are_fifos_or_zip_bombs_are_refused_on_resume(tmp_path):
    """A resume reads config.json, data.json and checkpoint.npz: a FIFO in their place is named at
    once, and a checkpoint whose member inflates to 256 MiB is refused before it is inflated."""
    argv = ["train", "ff:2-2-2", "--data", "xor", "--epochs", "1", "--no-progress"]
    assert main(argv + ["--out", str(tmp_path / "run")]) == 0
    runs = {}
    for name in ("config.json", "data.json", "checkpoint.npz", "bomb"):
        out = shutil.copytree(tmp_path / "run", tmp_path / name)
        target = out / ("checkpoint.npz" if name == "bomb" else name)
        target.unlink()
        if name == "bomb":
            with (
                zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z,
                z.open("epoch.npy", "w", force_zip64=True) as member,
            ):
                for _ in range(16):  # 256 MiB of zeros in 256 kB, written in a stream
                    member.write(bytes(16 << 20))
        else:
            os.mkfifo(target)
        runs[name] = target
    results = in_child(
        [argv + ["--out", str(path.parent), "--resume"] for path in runs.values()], timeout=60
    )
    for (name, path), (code, err) in zip(runs.items(), results, strict=True):
        assert code == 2, (name, err)
        what = "checkpoint" if name == "checkpoint.npz" else "run file"
        reason = (
            "ValueError: its members unpack to 268,435,456 bytes, more than the file's"
            if name == "bomb"
            else f"FileReadError: {what} {str(path)!r} is a FIFO, not a regular file"
        )
        assert err.startswith(f"circuitep: error: {path} cannot be read ({reason}"), err
        assert "delete the file or start a new run" in err, err
