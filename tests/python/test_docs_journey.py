"""The documentation's examples run as written against a standalone: the README's Python
quick-start snippet prints the message it sent, and every `magnetar-admin` line of the CLI
block in docs/admin-api.md exits 0 (only the service URLs are swapped for the fixture's)."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 30


def code_blocks(doc, lang, after_heading=None):
    """The fenced `lang` blocks of `doc`, optionally only those after a heading."""
    text = (REPO / doc).read_text()
    if after_heading is not None:
        text = text.split(after_heading, 1)[1]
    return re.findall(r"```" + lang + r"\n(.*?)```", text, flags=re.S)


def admin_binary():
    path = Path(os.environ.get("MAGNETAR_BIN", "")).with_name("magnetar-admin")
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.skip(f"{path} not built (cargo build -p magnetar-tools --bins)")
    return str(path)


def test_readme_python_snippet_runs(standalone, tmp_path):
    snippet = code_blocks("README.md", "python")[0]
    assert "pulsar://127.0.0.1:6650" in snippet, snippet
    snippet = snippet.replace("pulsar://127.0.0.1:6650", standalone.service_url)
    # Bound the one blocking call and close the client so the script ends.
    snippet = snippet.replace("consumer.receive()", "consumer.receive(timeout_millis=20000)")
    script = tmp_path / "readme.py"
    script.write_text(snippet + "\nclient.close()\n")
    out = subprocess.run(
        [os.environ.get("MAGNETAR_PYTHON", sys.executable), str(script)],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    # The C++ core logs to stdout too; the snippet's own output is the line `b'hi'`.
    assert "b'hi'" in out.stdout.splitlines(), out.stdout[-2000:]


def cli_lines():
    block = code_blocks("docs/admin-api.md", "sh", after_heading="## CLI")[0]
    lines = []
    for raw in block.splitlines():
        line = raw.split("   #", 1)[0].split("  #", 1)[0].strip()
        if not line:
            continue
        # `[--version 0 | --all-versions]`: run the plain form and each alternative.
        m = re.search(r"\[(.*)\]", line)
        if m:
            base = line[: m.start()].strip()
            lines.append(base)
            lines.extend(f"{base} {alt.strip()}" for alt in m.group(1).split("|"))
        else:
            lines.append(line)
    return lines


def test_admin_api_cli_block_runs_as_written(standalone, tmp_path):
    admin = admin_binary()
    (tmp_path / "schema.json").write_text(
        '{"type": "JSON", "schema": "{\\"type\\":\\"record\\",\\"name\\":\\"O\\",'
        '\\"fields\\":[{\\"name\\":\\"id\\",\\"type\\":\\"int\\"}]}", "properties": {}}'
    )
    env = dict(os.environ, MAGNETAR_ADMIN_URL=standalone.http_url)
    lines = cli_lines()
    assert len(lines) >= 10, lines
    for line in lines:
        argv = shlex.split(line.replace("http://127.0.0.1:8080", standalone.http_url))
        assert argv[0] == "magnetar-admin", line
        out = subprocess.run(
            [admin] + argv[1:], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
        )
        assert out.returncode == 0, f"{line}\n{out.stdout[-1000:]}\n{out.stderr[-1000:]}"
