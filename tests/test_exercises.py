"""The exercises check themselves: llm_pretrain/exercises.py against right, wrong and odd
answers."""

import re
import subprocess
import sys

import nbformat
import pytest

from helpers import ROOT
from llm_pretrain import exercises
from llm_pretrain.exercises import EXERCISES, check, grade

NOT_ANSWERED = "✏️ 还没有作答：把你的答案赋给 answer，再运行这个单元格"

# The reference answer of every exercise, worked out independently of the checkers.
REFERENCE = {
    "00.1": 11.93,  # ln(151,936): a random model guesses uniformly over the bigger vocabulary
    "00.2": "C",  # 模型预训练: never in the corpus, 15 tokens for its 15 UTF-8 bytes
    "01.1": 110_172_160,  # 28 x 2 x (1536 x 1280 + 1280)
    "01.2": 18,  # (80 - 5.79) / (0.36 + 3.73)
    "01.3": 24.97,  # 100 x 4096 x 256 / 4,198,656: the untied output matrix of the tiny model
    "02.1": "C",
    "02.2": "A",
    "02.3": "D",
    "03.1": 1104,
    "03.2": "BD",
    "03.3": "AD",
    "04.1": "D",
    "04.2": 0.601,  # 1 / ln 2 / 2.4
    "04.3": "D",  # attention_dropout=0.1 draws from the RNG; the sampler's order does not
    "04.4": "BCE",  # solutions/04: read off four 30-step runs
    "05.1": 1,  # 2 x 8 x 4 = 64 sequences per step; 8 GPUs x 8 make 64 already
    "05.2": 3.09,  # 16 bytes x 1.54e9 / 8 GPUs
    "05.3": "AE",  # notes.txt and a renamed loss curve are not the script's names
    "06.1": 20.80,  # 1e12 / (16 x 0.40 x 989e12 / 11.376e9) s = 1.797e6 s
    "06.2": "ACE",
}
# Other spellings of a right answer that must pass too.
ALSO_RIGHT = {
    "00.1": [11.9, 12, 11.95, 11.81, 11.7],  # ln(vocab) rounded, or a measured loss
    "00.2": [" c"],
    "01.1": [110.2e6, 1.1e8, 110_100_480],  # rounded; without the biases
    "01.3": [25, 25.0, 24.966, 24.6],  # 1.05M / 4.20M, rounded
    "03.1": [1106, 4423 // 4],  # careful estimates are within 1 %
    "03.2": ["db", "B, D", "b d", ["D", "B"], ("B", "D"), {"B", "D"}, "B、D",
             "ＢＤ", "Ｂ，Ｄ", "B和D", "B 及 D", "ｂ；ｄ"],  # a Chinese IME's full width, 和/及
    "03.3": ["da", "A,D"],
    "04.2": [0.6, 1 / 0.6931 / 2.4],
    "04.4": ["ecb", "B, C, E"],
    "05.1": [1.0],
    "05.2": [3.1, 3.087],
    "05.3": ["ea", "A, E", ["E", "A"]],
    "06.1": [20.8, 21, 20.3, 1.797e6 / 86_400],  # 20.3: 1.5e9 for the parameter count
    "06.2": ["eca", "A, C, E", ["E", "C", "A"], "a c e"],
}
# Plausible wrong answers: each must fail with a hint.
WRONG = {
    "00.1": [8.32, 17.21, 5.18, 151_936, 1 / 151_936, 0],
    "00.2": ["A", "B", "D"],
    "01.1": [1_653_886_464, 55_086_080, 3_934_720, 110.17, 0],
    "01.2": [19, 46, 8, 13, 0],
    "01.3": [19.98, 15.12, 0.2497, 33.29, 1_048_576, 5_247_232, 100],
    "02.1": ["A", "B", "D"],
    "02.2": ["B", "C", "D"],
    "02.3": ["A", "B", "C"],
    "03.1": [4423, 17_692, 1000],
    "03.2": ["B", "D", "BCD", "ABDE", "AE"],
    "03.3": ["A", "D", "ABD", "BC", "ACD"],
    "04.1": ["A", "B", "C"],
    "04.2": [0.4167, 1.4427, 3.4624, 2.718, -0.601],
    "04.3": ["A", "B", "C"],
    "04.4": ["BC", "ABCE", "BCDE", "A", "D", "CE"],
    "05.1": [4, 16, 64, 2, 0.5],
    "05.2": [5.79, 2.875, 24.7, 0.386, 6.2, 3.0],  # 3.0: 16 x 1.5e9 / 8
    "05.3": ["A", "E", "AB", "ACE", "BCD", "ABCDE"],
    "06.1": [18.87, 16.94, 8.32, 332.8, 499.3, 1.797e6, 0],  # T=2048, 6N only, MFU 1, 1 GPU, h, s
    "06.2": ["AC", "AE", "CE", "ACDE", "ABCE", "B", "D", "ABCDE"],
}
NUMERIC = {key for key, value in REFERENCE.items() if not isinstance(value, str)}
WRONG_TYPE = {
    **{key: ["2", [1, 2], True, {"value": 1}, float("nan")] for key in NUMERIC},
    **{key: [2, 1.0, ["A", 1], "", "AZ"] for key in set(REFERENCE) - NUMERIC},
}
SINGLE_CHOICE = {key for key, value in REFERENCE.items() if isinstance(value, str)
                 and len(value) == 1}
NUMBER = re.compile(r"(?<![A-Za-z0-9_.*\-])\d[\d,_]*(?:\.\d+)?(?:e[+-]?\d+)?")


def one_line(capsys) -> str:
    out = capsys.readouterr().out
    assert out.endswith("\n") and out.count("\n") == 1, repr(out)
    return out.rstrip("\n")


def reveals(feedback: str, reference) -> bool:
    """Whether `feedback` names the reference: one of its letters, or a number close to it."""
    if isinstance(reference, str):
        return any(re.search(rf"(?<![A-Za-z]){letter}(?![A-Za-z])", feedback)
                   for letter in reference)
    numbers = [float(n.replace(",", "").replace("_", "")) for n in NUMBER.findall(feedback)]
    return any(abs(n - reference) <= max(1e-3 * abs(reference), 5e-3) for n in numbers)


def test_registry_holds_exactly_the_exercises():
    assert set(EXERCISES) == set(REFERENCE)
    assert all(re.fullmatch(r"0[0-6]\.[1-4]", key) for key in EXERCISES)


@pytest.mark.parametrize("exercise_id", sorted(REFERENCE))
def test_reference_answer_passes(exercise_id, capsys):
    for answer in [REFERENCE[exercise_id], *ALSO_RIGHT.get(exercise_id, [])]:
        assert grade(exercise_id, answer) is True, answer
        assert one_line(capsys).startswith("✅ 正确"), answer


@pytest.mark.parametrize("exercise_id", sorted(REFERENCE))
def test_wrong_answers_fail_without_revealing(exercise_id, capsys):
    assert WRONG[exercise_id]
    for answer in WRONG[exercise_id]:
        assert grade(exercise_id, answer) is False, answer
        line = one_line(capsys)
        assert line.startswith("❌ 再想想：") and len(line) > len("❌ 再想想：") + 4, line
        assert not reveals(line, REFERENCE[exercise_id]), line


@pytest.mark.parametrize("exercise_id", sorted(REFERENCE))
def test_no_answer_asks_for_one(exercise_id, capsys):
    assert grade(exercise_id, None) is False
    assert one_line(capsys) == NOT_ANSWERED


@pytest.mark.parametrize("exercise_id", sorted(REFERENCE))
def test_wrong_type_says_what_is_expected(exercise_id, capsys):
    for answer in WRONG_TYPE[exercise_id]:
        assert grade(exercise_id, answer) is False, answer
        line = one_line(capsys)
        assert line.startswith("❌ 再想想："), line
        assert not reveals(line, REFERENCE[exercise_id]), line
        if answer == "" or isinstance(answer, float) and answer != answer:
            continue  # empty or NaN: said so, no type to name
        assert ("数" if exercise_id in NUMERIC else "选项") in line, line


@pytest.mark.parametrize("exercise_id", sorted(SINGLE_CHOICE))
def test_single_choice_takes_one_letter(exercise_id, capsys):
    reference = REFERENCE[exercise_id]
    assert grade(exercise_id, "AB" if reference == "A" else reference + "A") is False
    assert "单选" in one_line(capsys)


@pytest.mark.parametrize("bad_id", ["9.9", "03.4", "3.1", "", 3.1, None])
def test_unknown_id_is_a_key_error(bad_id, capsys):
    with pytest.raises(KeyError, match="unknown exercise id.*03.1"):
        grade(bad_id, "A")
    assert capsys.readouterr().out == ""


def test_expected_values_match_the_chapters():
    # chapter 1 counts 1,543,714,304 and 4,198,656 on the meta device; chapter 4 packs 4,201 + 222
    # blocks of 128
    assert exercises.qwen2_parameters(exercises.qwen_config()) == 1_543_714_304
    assert exercises.qwen2_parameters(exercises.tiny_config()) == 4_198_656
    assert exercises.packed_blocks(128) == 4201 + 222
    assert exercises.count_tokens("个苹果") == 1
    assert exercises.count_tokens("模型预训练") == len("模型预训练".encode()) == 15


def test_import_is_light():
    done = subprocess.run(
        [sys.executable, "-c", "import sys, llm_pretrain.exercises; "
         "print(sorted({'torch', 'transformers', 'datasets'} & set(sys.modules)))"],
        cwd=ROOT / "chapters", capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def exercise_sources() -> dict[str, list[str]]:
    """Code cells of the chapter and solution notebooks."""
    sources = {}
    notebooks = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
    notebooks += sorted((ROOT / "chapters" / "solutions").glob("*.ipynb"))
    for path in notebooks:
        cells = nbformat.read(path, as_version=4).cells
        sources[str(path.relative_to(ROOT))] = [c.source for c in cells if c.cell_type == "code"]
    return sources


CHECK_CALL = re.compile(r"""\bcheck\(\s*["']([^"']+)["']""")


def test_every_id_used_exists():
    used = {key for cells in exercise_sources().values() for c in cells
            for key in CHECK_CALL.findall(c)}
    assert used <= set(EXERCISES), sorted(used - set(EXERCISES))


def test_chapters_ask_every_exercise_with_an_empty_answer():
    """Every chapter asks all of its exercises, each from a cell with an empty answer."""
    for name, cells in exercise_sources().items():
        if "solutions" in name:
            continue
        assert any("from llm_pretrain.exercises import check" in c for c in cells), name
        chapter = name.replace("\\", "/").rsplit("/", 1)[-1][:2]
        asking = [c for c in cells if CHECK_CALL.search(c)]
        asked = [key for c in asking for key in CHECK_CALL.findall(c)]
        assert sorted(asked) == sorted(k for k in EXERCISES if k.startswith(chapter)), name
        for cell in asking:
            assert re.search(r"^answer = None\b", cell, flags=re.M), (name, cell)


def test_every_exercise_has_a_solution():
    solved = {key for name, cells in exercise_sources().items() if "solutions" in name
              for c in cells for key in CHECK_CALL.findall(c)}
    assert solved == set(EXERCISES)


def test_check_prints_one_line_and_returns_nothing(capsys):
    """What the notebooks call: a cell ending in check(...) shows the feedback line only."""
    assert check("04.2", None) is None
    assert capsys.readouterr().out == NOT_ANSWERED + "\n"


def test_odd_answers_only_ever_print_a_line(capsys):
    assert grade("01.3", 10**400) is False  # too large for a float
    assert "有限" in capsys.readouterr().out
    for exercise_id in ["00.2", "02.1", "04.3"]:
        (letter,) = [x for x in "ABCD" if grade(exercise_id, x)]
        assert grade(exercise_id, letter * 2) is True  # "BB" is still one letter


# solutions/04's stored run: the train loss at steps 2, 4, ..., 30 for each learning rate
COURSE_RUNS = {
    1e-4: "8.38 8.28 8.11 7.99 7.67 7.74 7.72 7.47 7.39 7.35 7.23 7.30 7.22 7.24 7.25",
    1e-3: "8.38 7.93 7.32 6.92 6.17 5.96 5.75 5.13 4.85 4.87 4.46 4.69 4.56 4.49 4.59",
    1e-2: "8.38 7.28 5.09 5.13 4.83 5.28 5.55 4.81 4.51 4.63 4.15 4.46 4.34 4.18 4.29",
    1e-1: "8.38 6.70 9.10 15.49 13.87 12.03 11.66 9.30 7.23 6.54 5.00 5.18 4.93 4.75 4.78",
}


def as_curves(runs: dict) -> dict:
    """{lr: [(step, loss), ...]} as the exercise's code builds it, from losses as text."""
    return {lr: [(2 * (k + 1), float(loss)) for k, loss in enumerate(losses.split())]
            for lr, losses in runs.items()}


def test_learning_rate_statements_are_judged_on_the_learners_own_curves(capsys):
    """04.4 asks what the learner's own plot shows: given `curves`, the checker reads them."""
    course = as_curves(COURSE_RUNS)
    assert {k for k, held in exercises.lr_statements(course).items() if held} == exercises.LR_KEY
    assert grade("04.4", "BCE", curves=course) is True
    assert "你画出的" in one_line(capsys)
    # another CPU: 1e-2 ends above 1e-3 at step 30, so E no longer holds there
    other = as_curves({**COURSE_RUNS, 1e-2: COURSE_RUNS[1e-2].replace("4.29", "4.70")})
    assert grade("04.4", "BC", curves=other) is True
    one_line(capsys)
    assert grade("04.4", "BCE", curves=other) is False
    assert one_line(capsys).startswith("❌ 再想想：")
    assert grade("04.4", "BCE", curves={1e-4: [(2, 8.4)]}) is False  # not the exercise's dict
    assert "`curves`" in one_line(capsys)
    assert grade("04.4", "BCE") is True  # no curves: the course's run
    assert "CPU" in one_line(capsys)


def test_the_learning_rate_runs_the_chapter_shows_are_the_ones_the_solution_reads():
    """Exercise 04.4 gives its training code as a block in the chapter's prose; the solution runs
    that code (and prints and draws a little more), so the block is tested there, line by line."""
    chapter = nbformat.read(ROOT / "chapters" / "04_trainer.ipynb", as_version=4)
    (prose,) = [c.source for c in chapter.cells if "**4. 读损失曲线：学习率。**" in c.source]
    block = re.search(r"```python\n(.*?)```", prose, re.S).group(1)
    solution = nbformat.read(ROOT / "chapters" / "solutions" / "04_trainer_solutions.ipynb",
                             as_version=4)
    code = "\n".join(c.source for c in solution.cells if c.cell_type == "code")
    lines = [line for line in block.splitlines() if line.strip()]
    assert len(lines) > 15
    missing = [line for line in lines if line not in code.splitlines()]
    assert missing in ([], ["from transformers import PrinterCallback"]), missing
