"""The shmbus programs of the README's "From Python" section run and print
what their multiprocessing twins print."""

import os
import re
import subprocess
import sys

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
WATCHDOG = 300


def blocks():
    text = open(README, encoding="utf-8").read()
    section = text.split("## From Python\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def run(code, env):
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=WATCHDOG
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_readme_pairs_print_the_same(daemon):
    bs = blocks()
    assert len(bs) == 6
    env = {**os.environ, "SHMBUS_BUS": daemon.bus}
    for mp_code, shm_code in zip(bs[0::2], bs[1::2]):
        assert "import shmbus" in shm_code and "import shmbus" not in mp_code
        assert run(shm_code, env) == run(mp_code, env)
