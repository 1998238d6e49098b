"""README's shell commands stay runnable: every `phosphene ...` line of its ```bash blocks parses,
and (slow test) runs at tiny sizes, in order, in a temporary folder, so the docs cannot drift.

Rewrites: sizes and step counts become tiny where the command has the option (added where the README
leaves the default), ``../shared/data/imagenet-samples`` becomes a folder of a few sample images
(same file names), ``$VAR`` comes from a small environment. Commands that do not end by themselves
or need what only people produce (``experiment serve``/``export``/``analyze``) and ``--ray`` ones
(covered by tests/test_ray.py), and commands for models that need torchvision, timm or downloaded
weights (tests/test_*models.py) are parsed but not run.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from phosphene.cli.app import main
from phosphene.cli.report import DefaultBuildGroup

README = Path(__file__).resolve().parent.parent / "README.md"
SAMPLES = "../shared/data/imagenet-samples"
ENV = {"TOKEN": "readme-test-admin-token"}
# option -> tiny value; set where the command has the option (replaced, or added if absent)
TINY = {"--steps": "1", "--size": "48", "--viz-size": "48", "--image-size": "48", "--crops": "2",
        "--units-per-layer": "3", "--naturals": "2", "--visualizations": "1", "--n": "2",
        "--images-per-unit": "1", "--trials-per-condition": "1", "--participants": "1",
        "--per-group": "4", "--batch-size": "4", "--workers": "0", "--input-size": "48",
        "--icon-size": "16", "--probe": "4", "--diverse": "1", "--mtis": "1", "--accent-steps": "1",
        "--accent-crops": "1", "--accent-top": "1", "--accent-unrelated": "0", "--trials": "4",
        "--group": "1"}
# option -> tiny value; replaced only where the README gives the option
SHRINK = {"--channels": ("0-15", "0-1"), "--lam-sweep": (None, "0,1"), "--batch": (None, "2")}
# (sub)command -> option -> tiny value, set (replaced or added) for that command only
PER_COMMAND = {("report", "build"): {"--units": "0-1"}}
# models run here; others need torchvision, timm or downloaded weights (tests/test_*models.py)
EMBEDDED = ("efficientnet_lite",)
NOT_RUN = (("experiment", "serve"), ("experiment", "export"), ("experiment", "analyze"),
           ("report", "serve"), ("download",))  # download: the network (tests/test_inception_v1.py fakes it)


def readme_commands(text: str) -> list[str]:
    """The `phosphene ...` commands of the ```bash blocks, continuation lines joined, comments cut."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):  # VAR=value before the command
                    words = words[1:]
                if words[:1] == ["phosphene"]:
                    commands.append(shlex.join(words))
    return commands


def table_commands(text: str) -> list[str]:
    """The complete `phosphene ...` commands quoted in table rows (the Tasks table)."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    quoted = [c for row in rows for c in re.findall(r"`(phosphene [^`]+)`", row)]
    return [c for c in quoted if "…" not in c and "[" not in c and "--out" in c]


def resolve(args: list[str]) -> tuple[list[str], click.Command]:
    """The words naming the (sub)command and the click command they name."""
    command, path = main, []
    for word in args:
        if not isinstance(command, click.Group) or word.startswith("-"):
            break
        sub = command.commands.get(word)
        if sub is None:
            break
        command, path = sub, [*path, word]
    return path, command


def tiny(command: str, samples: Path) -> list[str]:
    """The command's arguments with tiny sizes and the sample folder replaced."""
    args = shlex.split(os.path.expandvars(command.replace(SAMPLES, str(samples))))[1:]
    group = main.commands.get(args[0]) if args else None
    if isinstance(group, DefaultBuildGroup) and len(args) > 1 and args[1] not in group.commands:
        args.insert(1, "build")  # `phosphene report RUN ...` is `phosphene report build RUN ...`
    path, cmd = resolve(args)
    options = {opt for param in cmd.params for opt in getattr(param, "opts", [])}
    for option, value in {**TINY, **PER_COMMAND.get(tuple(path), {})}.items():
        if option not in options:
            continue
        if option in args:
            args[args.index(option) + 1] = value
        else:
            args += [option, value]
    for option, (old, new) in SHRINK.items():
        if option in args and old in (None, args[args.index(option) + 1]):
            args[args.index(option) + 1] = new
    return args


def parse(args: list[str]) -> None:
    """Parse like the CLI would, without running: unknown options or bad values raise."""
    path, command = resolve(args)
    command.make_context(" ".join(["phosphene", *path]), args[len(path):])


def runs(args: list[str]) -> bool:
    """Whether the test runs the command (else it only parses it)."""
    path, _ = resolve(args)
    model = args[args.index("--model") + 1] if "--model" in args else EMBEDDED[0]
    return (tuple(path) not in NOT_RUN and "--ray" not in args and "--weights" not in args
            and model.startswith(EMBEDDED))


@pytest.fixture
def samples(samples_dir, tmp_path) -> Path:
    """A few sample images (the tench and the hen among them) in a folder of their own."""
    folder = tmp_path / "samples"
    folder.mkdir()
    paths = sorted(samples_dir.glob("*.JPEG"))
    chosen = {p.name: p for p in paths[::40]}
    chosen.update({p.name: p for p in paths if p.name in ("n01440764_tench.JPEG", "n01514859_hen.JPEG")})
    for path in chosen.values():
        shutil.copy(path, folder / path.name)
    return folder


def test_readme_has_the_commands_of_every_verb():
    verbs = {resolve(shlex.split(c)[1:])[0][0] for c in readme_commands(README.read_text())}
    assert {"render", "accentuate", "mine", "tension", "invert", "atlas", "experiment", "models",
            "layers", "classify"} <= verbs


def test_readme_commands_parse(samples, monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    text = README.read_text()
    assert len(table_commands(text)) >= 8
    for command in readme_commands(text) + table_commands(text):
        try:
            parse(tiny(command, samples))
        except (click.ClickException, click.exceptions.Exit) as exc:
            pytest.fail(f"README command does not parse: {command}\n{exc}")


def test_readme_commands_run_at_tiny_sizes(samples, tmp_path, monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    ran = 0
    for command in readme_commands(README.read_text()):
        args = tiny(command, samples)
        if not runs(args):
            continue
        print(f"[readme] phosphene {shlex.join(args)}", flush=True)
        result = runner.invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, f"README command failed: {command}\n{result.output}"
        ran += 1
    assert ran >= 12
    assert (tmp_path / "out" / "quickstart" / "grid.png").is_file()
