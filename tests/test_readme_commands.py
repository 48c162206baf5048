"""The README's command lines, as a user types them.

Every ``tools/...`` and ``make ...`` line of the fenced shell blocks of README.md (and of
the docs/*.md it links) is collected, continuation lines joined:

* a line ending in ``# GPU`` or ``# full scale`` is full-scale (GPUs, the full datasets or
  a full run's output): its arguments are parsed with the tool's own parser, so every
  flag must exist;
* any other ``tools/`` line runs, in README order, as an executable (``tools/x.py ...``
  through bash, with the PATH of the test minus the venv's ``bin``: as in a fresh shell) in
  a scratch workspace whose ``tools`` and ``configs`` are the checkout's and whose ``.venv``
  is the environment running the tests; after a ``. .venv/bin/activate`` (or ``source``)
  line of the documents, every later line runs after that activation, as typed (a shell
  session: the README first, then the docs it links), on generated synthetic data, with
  the tool's shrinking
  arguments of :data:`TOOLS` added (fewer images and iterations, small inputs). Outputs
  chain as in the README (train -> evaluate -> CAMs -> convert -> transfer -> compare);
* ``make`` lines are not run here (``make setup/test/demo/bench`` run elsewhere), but must
  name Makefile targets.

A tool without an entry in :data:`TOOLS` fails the test: a new README command needs one.
"""

import os
import re
import shlex
import subprocess
import sys
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import pytest

from tiny_data import load_tool

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHELL_LANGS = ("bash", "sh", "shell", "console")
GPU_MARK = re.compile(r"^(GPU|full scale)\b")
TOOL_PATH = re.compile(r"^(?:\./)?tools/(\w+)\.py$")
ACTIVATE = re.compile(r"^(?:\.|source)\s+\S*bin/activate$")
EXCLUDED_MAKE_TARGETS = {"setup", "test", "demo", "demo-quick", "bench"}  # run by CI / make itself


class Shrink(NamedTuple):
    """Arguments added to a CPU line: ``prepend`` right after the tool (the line's own
    values win: flags of tools whose trailing ``KEY VALUE`` overrides would swallow them),
    ``append`` at the end (they win)."""

    prepend: Tuple[str, ...] = ()
    append: Tuple[str, ...] = ()


class Tool(NamedTuple):
    parser: str  # the tool module's function that returns its argparse parser
    shrink: Optional[Shrink]  # None: no CPU line allowed (too long here): mark it "# GPU"
    rest_to_train_parser: bool = False  # parse_known_args, the rest with the train tools' parser


# train tools: 2 iterations (1 of warm-up), no lr steps; on the CPU, no loader workers
SHORT_RUN = ("SOLVER.MAX_ITER", "2", "SOLVER.STEPS", "()", "SOLVER.WARMUP_ITERS", "1")
ON_CPU = ("DATALOADER.NUM_WORKERS", "0", "MODEL.DEVICE", "cpu")
CLS_INPUT = ("INPUT.CLS.CROP_SIZE", "32", "INPUT.CLS.TEST_RESIZE", "37", "TEST.IMS_PER_BATCH", "8")
CLS_INPUT += ON_CPU
TOOLS: Dict[str, Tool] = {
    "make_synthetic_imagenet": Tool(
        "build_parser",
        Shrink(
            append=(
                "--train-per-class",
                "2",
                "--val-per-class",
                "1",
                "--coco-train",
                "4",
                "--coco-val",
                "2",
                "--image-size",
                "48",
                "64",
            )
        ),
    ),
    "check_dataset": Tool("build_parser", Shrink(append=("--workers", "1", "--quiet"))),
    "dataset_stats": Tool("get_parser", Shrink()),
    "train_cls": Tool(
        "default_argument_parser",
        Shrink(
            append=("SOLVER.EPOCHS", "0")
            + SHORT_RUN
            + ("SOLVER.IMS_PER_BATCH", "4", "SOLVER.CHECKPOINT_PERIOD", "100000")
            + CLS_INPUT
        ),
    ),
    "eval_cls": Tool("get_parser", Shrink(append=CLS_INPUT)),
    "visualize_cam": Tool(
        "get_parser", Shrink(prepend=("--scatter-samples", "8"), append=CLS_INPUT)
    ),
    "convert_weights": Tool("get_parser", Shrink()),
    "train_det": Tool(
        "default_argument_parser",
        Shrink(
            append=SHORT_RUN
            + (
                "SOLVER.IMS_PER_BATCH",
                "2",
                "INPUT.MIN_SIZE_TRAIN",
                "(64,)",
                "INPUT.MAX_SIZE_TRAIN",
                "107",
                "INPUT.MIN_SIZE_TEST",
                "64",
                "INPUT.MAX_SIZE_TEST",
                "107",
            )
            + ON_CPU
        ),
    ),
    "compare_transfer": Tool("get_parser", Shrink()),
    "submit": Tool("build_parser", None, rest_to_train_parser=True),
    "demo": Tool("get_parser", None),
}
# What the README must let a user run on a CPU (issue: training, evaluation, CAMs,
# conversion, transfer, comparison, dataset tools).
CPU_WALKTHROUGH = {
    "make_synthetic_imagenet",
    "check_dataset",
    "dataset_stats",
    "train_cls",
    "eval_cls",
    "visualize_cam",
    "convert_weights",
    "train_det",
    "compare_transfer",
}


class Command(NamedTuple):
    where: str  # file:line
    text: str  # as typed (continuations joined), without the trailing comment
    comment: str
    argv: List[str]  # shlex tokens of text, environment assignments dropped
    activate: str = ""  # the documents' last activation line before it ("" if none)

    @property
    def gpu(self) -> bool:
        return bool(GPU_MARK.match(self.comment))

    @property
    def tool(self) -> Optional[str]:
        m = TOOL_PATH.match(self.argv[0])
        return m.group(1) if m else None


def _split_comment(text: str) -> Tuple[str, str]:
    """``(code, comment)``: the comment starts at a ``#`` after whitespace, outside quotes."""
    quote = None
    for i, c in enumerate(text):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip(), text[i + 1 :].strip()
    return text.rstrip(), ""


def read_commands(path: str, activate: str = "") -> List[Command]:
    """The ``tools/`` and ``make`` command lines of the fenced shell blocks of ``path``, each
    with the activation line in effect (``activate`` at the start of the file, then its own
    activation lines, as a shell session would)."""
    commands, lang, lines = [], None, open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        fence = re.match(r"^\s*```(\S*)", lines[i])
        if fence:
            lang = None if lang is not None else fence.group(1).lower()
            i += 1
            continue
        if lang not in SHELL_LANGS or not lines[i].strip():
            i += 1
            continue
        start, parts = i, [lines[i]]
        while parts[-1].rstrip().endswith("\\") and i + 1 < len(lines):
            parts[-1] = parts[-1].rstrip()[:-1]
            i += 1
            parts.append(lines[i])
        i += 1
        code, comment = _split_comment(re.sub(r"^\$\s+", "", " ".join(p.strip() for p in parts)))
        if not code:
            continue
        if ACTIVATE.match(code):
            activate = code
            continue
        argv = shlex.split(code)
        while argv and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", argv[0]):
            argv = argv[1:]  # VAR=value before the command
        if argv and (TOOL_PATH.match(argv[0]) or argv[0] == "make"):
            where = f"{os.path.relpath(path, REPO)}:{start + 1}"
            commands.append(Command(where, code, comment, argv, activate))
    return commands


def last_activation(path: str, activate: str = "") -> str:
    """The activation line in effect at the end of ``path`` (``activate`` if it has none)."""
    lang = None
    for line in open(path, encoding="utf-8").read().split("\n"):
        fence = re.match(r"^\s*```(\S*)", line)
        if fence:
            lang = None if lang is not None else fence.group(1).lower()
        elif lang in SHELL_LANGS and ACTIVATE.match(_split_comment(line.strip())[0]):
            activate = _split_comment(line.strip())[0]
    return activate


def documents() -> List[str]:
    """README.md and the docs/*.md it links."""
    readme = os.path.join(REPO, "README.md")
    linked = re.findall(r"\]\((docs/[^)#\s]+\.md)", open(readme, encoding="utf-8").read())
    return [readme] + [
        os.path.join(REPO, p)
        for p in dict.fromkeys(linked)
        if os.path.exists(os.path.join(REPO, p))
    ]


def read_all_commands() -> List[Command]:
    """The command lines of :func:`documents`, in reading order, activations carried over."""
    commands, activate = [], ""
    for doc in documents():
        commands += read_commands(doc, activate)
        activate = last_activation(doc, activate)
    return commands


COMMANDS = read_all_commands()
TOOL_COMMANDS = [c for c in COMMANDS if c.tool]
GPU_COMMANDS = [c for c in TOOL_COMMANDS if c.gpu]
CPU_COMMANDS = [c for c in TOOL_COMMANDS if not c.gpu]
MAKE_COMMANDS = [c for c in COMMANDS if c.argv[0] == "make"]


def test_the_readme_has_a_cpu_walkthrough_and_full_scale_lines():
    assert {c.tool for c in CPU_COMMANDS} >= CPU_WALKTHROUGH, sorted(
        CPU_WALKTHROUGH - {c.tool for c in CPU_COMMANDS}
    )
    assert GPU_COMMANDS, "no line marked '# GPU'"
    assert {"demo", "test"} <= {t for c in MAKE_COMMANDS for t in c.argv[1:]}


def test_every_tool_of_the_readme_has_an_entry():
    for c in TOOL_COMMANDS:
        assert c.tool in TOOLS, f"{c.where}: tools/{c.tool}.py has no entry in TOOLS of {__file__}"
        if not c.gpu:
            assert TOOLS[c.tool].shrink is not None, (
                f"{c.where}: tools/{c.tool}.py cannot run here: "
                "mark the line '# GPU' or give the tool a Shrink"
            )


def _makefile_targets() -> set:
    targets = set()
    for line in open(os.path.join(REPO, "Makefile"), encoding="utf-8"):
        m = re.match(r"^([A-Za-z0-9_.\- ]+):(?!=)", line)
        if m:
            targets.update(m.group(1).split())
    return targets


@pytest.mark.parametrize("command", MAKE_COMMANDS, ids=lambda c: c.where)
def test_make_lines_name_makefile_targets(command):
    targets = [t for t in command.argv[1:] if not t.startswith("-") and "=" not in t]
    assert targets, command.text
    missing = sorted(set(targets) - _makefile_targets())
    assert not missing, f"{command.where}: {command.text!r}: no Makefile target {missing}"
    # run elsewhere (CI runs `make test`, the demo and the benchmarks have their own tests)
    assert set(targets) <= EXCLUDED_MAKE_TARGETS | {"env"}, f"{command.where}: run it here too"


def parse_with_the_tool(command: Command) -> None:
    """Parse ``command``'s arguments with its tool's parser; SystemExit (argparse's usage
    error) fails the test with the line."""
    entry = TOOLS[command.tool]
    parser = getattr(load_tool(command.tool), entry.parser)()
    try:
        if entry.rest_to_train_parser:
            _, rest = parser.parse_known_args(command.argv[1:])
            load_tool("train_cls").default_argument_parser().parse_args(rest)
        else:
            parser.parse_args(command.argv[1:])
    except SystemExit as e:
        pytest.fail(
            f"{command.where}: {command.text!r}: "
            f"the parser of tools/{command.tool}.py refuses it ({e})"
        )


@pytest.mark.parametrize("command", GPU_COMMANDS, ids=lambda c: c.where)
def test_full_scale_lines_parse(command, capsys):
    assert command.tool in TOOLS, f"tools/{command.tool}.py has no entry in TOOLS"
    parse_with_the_tool(command)
    assert "error" not in capsys.readouterr().err


def test_the_parse_check_catches_a_wrong_flag():
    bad = Command(
        "x",
        "tools/train_cls.py --confg-file a.yaml",
        "GPU",
        ["tools/train_cls.py", "--confg-file", "a.yaml"],
    )
    with pytest.raises(pytest.fail.Exception, match="refuses it"):
        parse_with_the_tool(bad)


def shrunk(command: Command) -> str:
    """The line as typed, with its tool's shrinking arguments (shell-quoted) added."""
    shrink = TOOLS[command.tool].shrink
    head = re.match(r"^((?:[A-Za-z_][A-Za-z0-9_]*=\S+\s+)*(?:\./)?tools/\w+\.py)", command.text)
    assert head, command.text
    prepend = "".join(" " + shlex.quote(t) for t in shrink.prepend)
    append = "".join(" " + shlex.quote(t) for t in shrink.append)
    return head.group(1) + prepend + command.text[head.end() :] + append


def _outputs(command: Command) -> List[str]:
    """Paths the line names under output/: they must exist after it ran."""
    return [t for t in command.argv[1:] if t.startswith("output/")]


def fresh_shell_path() -> str:
    """The test's PATH without the venv's ``bin`` (nor an activated one's): what a new shell
    has before the README's activation line."""
    venv_bins = {os.path.dirname(sys.executable), os.path.join(sys.prefix, "bin")}
    if os.environ.get("VIRTUAL_ENV"):
        venv_bins.add(os.path.join(os.environ["VIRTUAL_ENV"], "bin"))
    venv_bins = {os.path.realpath(p) for p in venv_bins}
    kept = [
        p
        for p in os.environ.get("PATH", "").split(os.pathsep)
        if p and os.path.realpath(p) not in venv_bins
    ]
    return os.pathsep.join(kept)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws = tmp_path_factory.mktemp("readme")
    for name in ("tools", "configs"):
        os.symlink(os.path.join(REPO, name), ws / name)
    os.symlink(sys.prefix, ws / ".venv")  # what `make setup` makes in a clone
    env = dict(
        os.environ,
        PATH=fresh_shell_path(),
        DETECTRON2_DATASETS=str(ws / "datasets"),
        OMP_NUM_THREADS="1",
    )
    env.pop("VIRTUAL_ENV", None)
    return str(ws), env


def test_the_walkthrough_activates_the_venv_first():
    """The tools' ``#!/usr/bin/env python`` needs the venv's python first on PATH: the
    README's CPU walkthrough starts with the activation a user types."""
    first = next(c for c in COMMANDS if c.tool and not c.gpu)
    assert first.where.startswith("README.md:") and ACTIVATE.match(first.activate), first


def run_in_order(
    commands: Sequence[Command], cwd: str, env: dict
) -> List[Tuple[Command, str, subprocess.CompletedProcess]]:
    done = []
    for command in commands:
        line = shrunk(command)
        typed = f"{command.activate}\n{line}" if command.activate else line
        proc = subprocess.run(
            ["bash", "-c", typed], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
        )
        done.append((command, line, proc))
        if proc.returncode != 0:
            break
    return done


def test_cpu_lines_run_as_typed(workspace):
    """One test, in README order: later lines read what earlier lines wrote."""
    cwd, env = workspace
    done = run_in_order(CPU_COMMANDS, cwd, env)
    for command, line, proc in done:
        tail = (proc.stdout[-1500:] + "\n" + proc.stderr[-3000:]).strip()
        assert proc.returncode == 0, (
            f"{command.where} failed (exit {proc.returncode}):\n$ {line}\n{tail}"
        )
        assert "Traceback" not in proc.stderr, f"{command.where}:\n$ {line}\n{tail}"
        missing = [p for p in _outputs(command) if not os.path.exists(os.path.join(cwd, p))]
        assert not missing, f"{command.where}: {missing} not written:\n$ {line}\n{tail}"
    assert len(done) == len(CPU_COMMANDS)
    # the chain's ends: a checkpoint trained, evaluated, transferred and compared
    compare = [proc for command, _, proc in done if command.tool == "compare_transfer"][-1]
    assert re.search(r"^\| *hard *\|", compare.stdout, re.M) and re.search(
        r"^\| *als *\|", compare.stdout, re.M
    )
