"""Self-checking exercises: `check("03.1", answer)` prints one line of feedback.

Written by hand (not generated from the notebooks); the chapters import it as
`from llm_pretrain.exercises import check`.

Each exercise has its own small checker in `EXERCISES`. Expected values are computed from first
principles (the published Qwen2.5-1.5B config, the bundled tokenizer and corpus) or with the
functions of the course package `llm_pretrain`, never pasted in; every tolerance is written in
its checker. Worked solutions are in `chapters/solutions/`, not in the chapters. Nothing heavy is
imported until a checker needs it.
"""

from __future__ import annotations

import json
import math
import numbers
import re
import unicodedata
from collections.abc import Callable
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the course root: assets/, chapters/, code/
ASSETS = ROOT / "assets"
NOT_ANSWERED = "✏️ 还没有作答：把你的答案赋给 answer，再运行这个单元格"


class Retry(Exception):
    """A wrong answer; its message is the hint printed after `❌ 再想想：`."""


EXERCISES: dict[str, Callable[[object], str]] = {}


def exercise(exercise_id: str):
    """Register a checker: it returns a remark ("" for none) or raises `Retry(hint)`."""

    def register(checker: Callable[[object], str]) -> Callable[[object], str]:
        EXERCISES[exercise_id] = checker
        return checker

    return register


def check(exercise_id: str, answer, **data) -> None:
    """Check `answer` to exercise `exercise_id` (such as "03.1") and print one line of feedback.

    `data` is what an exercise judges against besides the answer (04.4: the learner's `curves`).
    """
    grade(exercise_id, answer, **data)


def grade(exercise_id: str, answer, **data) -> bool:
    """`check` that also returns whether the answer is right (for the tests).

    Raises KeyError for an unknown id; any answer, of any type, only ever prints a line.
    """
    checker = EXERCISES.get(exercise_id) if isinstance(exercise_id, str) else None
    if checker is None:
        raise KeyError(f"unknown exercise id {exercise_id!r}; known ids: {', '.join(EXERCISES)}")
    if answer is None:
        print(NOT_ANSWERED)
        return False
    try:
        remark = checker(answer, **data)
    except Retry as wrong:
        print(f"❌ 再想想：{wrong}")
        return False
    print(f"✅ 正确：{remark}" if remark else "✅ 正确")
    return True


# ---- answer kinds -------------------------------------------------------------------------------


def as_number(answer) -> float:
    """The answer as a finite float, or a `Retry` that says a number is expected."""
    if isinstance(answer, str):
        raise Retry("这里要一个数（int 或 float），不是字符串：去掉引号再试")
    if isinstance(answer, bool) or not isinstance(answer, numbers.Real):
        item = "；张量或数组请先用 `.item()` 取出数值" if hasattr(answer, "item") else ""
        raise Retry(f"这里要一个数（int 或 float），你给的是 {type(answer).__name__}{item}")
    try:
        value = float(answer)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise Retry("这里要一个有限的数")
    return value


def is_close(value: float, target: float, rel: float = 0.0, abs_: float = 0.0) -> bool:
    """|value - target| within the larger of `abs_` and `rel` x |target| (0 and 0: exact)."""
    return abs(value - target) <= max(abs_, rel * abs(target))


def check_number(
    answer,
    expected: float,
    *,
    hint: str,
    rel: float = 0.0,
    abs_: float = 0.0,
    traps: tuple[tuple[float, str], ...] = (),
    unit_hint: str = "",
) -> None:
    """Accept `answer` within the tolerance of `expected`; explain known mistakes (`traps`)."""
    value = as_number(answer)
    if is_close(value, expected, rel, abs_):
        return
    for trap, trap_hint in traps:
        if is_close(value, trap, rel, abs_):
            raise Retry(trap_hint)
    if unit_hint and any(is_close(value * s, expected, rel, abs_) for s in (1e3, 1e6, 1e9)):
        raise Retry(unit_hint)
    raise Retry(hint)


SEPARATORS = re.compile(r"[\s,、;/+&和及]+")  # after NFKC: full-width ，；＋ are ASCII


def as_letters(answer, options: str) -> str:
    """Option letters from "b", " B ", "A, C", ["A", "C"], full-width "ＢＤ", "B和D"; a `Retry`
    for anything else."""
    if isinstance(answer, list | tuple | set | frozenset) and all(
        isinstance(a, str) for a in answer
    ):
        answer = "".join(answer)
    if not isinstance(answer, str):
        raise Retry(f"这里要填选项的字母，写成带引号的字符串；你给的是 {type(answer).__name__}")
    answer = unicodedata.normalize("NFKC", answer)  # a Chinese IME's full-width letters
    letters = SEPARATORS.sub("", answer).upper()
    if not letters:
        raise Retry("答案是空的：写上选项的字母")
    unknown = "".join(sorted(set(letters) - set(options)))
    if unknown:
        raise Retry(f"只能从题目给出的选项里选（“{unknown}”不是选项）")
    return letters


def check_choice(answer, correct: str, options: str, *, why_not: dict[str, str], hint: str) -> None:
    """Single choice: one letter, case and spaces ignored."""
    letters = set(as_letters(answer, options))
    if len(letters) > 1:
        raise Retry("这是单选题：只填一个字母")
    (letter,) = letters
    if letter != correct:
        raise Retry(why_not.get(letter, hint))


def check_choices(
    answer, correct: set[str], options: str, *, why_not: dict[str, str], missing: str
) -> None:
    """Select all that apply: the chosen set must equal `correct`; order and separators free."""
    chosen = set(as_letters(answer, options))
    wrong = sorted(chosen - correct)
    if wrong:
        raise Retry(why_not.get(wrong[0], f"“{wrong[0]}”不该选：再读一遍这一项"))
    if chosen != correct:
        raise Retry(missing)


# ---- expected values from first principles ------------------------------------------------------


@cache
def qwen_config() -> dict:
    """The published Qwen2.5-1.5B `config.json` bundled in assets/."""
    return json.loads((ASSETS / "qwen2.5-1.5b" / "config.json").read_text(encoding="utf-8"))


@cache
def tiny_config() -> dict:
    """The course's tiny Qwen2 `config.json` bundled in assets/ (chapter 1, section 4)."""
    return json.loads((ASSETS / "tiny-qwen2" / "config.json").read_text(encoding="utf-8"))


def qwen2_parameters(config: dict) -> int:
    """Parameters of a `Qwen2ForCausalLM`, counted as `model.num_parameters()` counts them.

    Per layer: q, k, v projections with bias, o without; a SwiGLU MLP (gate, up, down); two
    RMSNorms. Plus the embedding, the final RMSNorm and, when not tied, the output layer.
    """
    h, i = config["hidden_size"], config["intermediate_size"]
    kv = h // config["num_attention_heads"] * config["num_key_value_heads"]
    attention = (h * h + h) + 2 * (h * kv + kv) + h * h
    layer = attention + 3 * h * i + 2 * h
    embedding = config["vocab_size"] * h
    output = 0 if config["tie_word_embeddings"] else embedding
    return embedding + config["num_hidden_layers"] * layer + h + output


def memory_gb(
    config: dict, seq_len: int, n_gpus: int, zero_stage: int, checkpointing: bool = True
) -> tuple[float, float]:
    """(model states, per sequence) GB per GPU of bf16 AdamW training, as chapter 1 estimates.

    Model states: 2 bytes of weights, 2 of gradients, 12 of optimizer state per parameter, ZeRO
    stage 1/2/3 sharding the optimizer state / + gradients / + weights over `n_gpus`. Per
    sequence: saved bf16 activations and the logits' 12 bytes per token and vocabulary entry
    (three fp32 tensors of their shape at the peak, in backward).
    """
    n = qwen2_parameters(config)
    h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    kv = h // config["num_attention_heads"] * config["num_key_value_heads"]
    per_layer = 6 * h + 2 * kv + 4 * i  # saved bf16 values per token per layer
    saved = h * layers + per_layer if checkpointing else per_layer * layers
    states = (
        2 * n / (n_gpus if zero_stage >= 3 else 1)
        + 2 * n / (n_gpus if zero_stage >= 2 else 1)
        + 12 * n / (n_gpus if zero_stage >= 1 else 1)
    )
    per_sequence = 2 * seq_len * saved + 12 * seq_len * config["vocab_size"]
    return states / 1e9, per_sequence / 1e9


def max_micro_batch(config: dict, gpu_gb: float, **setup) -> int:
    """The largest micro-batch whose estimate fits in `gpu_gb` GB."""
    states, per_sequence = memory_gb(config, **setup)
    return math.floor((gpu_gb - states) / per_sequence)


@cache
def bundled_tokenizer():
    """The course tokenizer through the `tokenizers` library (lighter than transformers)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(ASSETS / "tokenizer" / "tokenizer.json"))


def count_tokens(text: str) -> int:
    """Tokens of `text` without special tokens, as `tokenizer(text)` gives them here."""
    return len(bundled_tokenizer().encode(text, add_special_tokens=False).ids)


@cache
def corpus_token_counts() -> tuple[int, ...]:
    """Tokens per corpus document plus its EOS, as `tokenize_function` makes them."""
    with (ASSETS / "corpus" / "seq_monkey_sample.jsonl").open(encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    encoded = bundled_tokenizer().encode_batch(texts, add_special_tokens=False)
    return tuple(len(e.ids) + 1 for e in encoded)


def packed_blocks(block_size: int, map_batch_size: int = 1000) -> int:
    """Blocks `prepare_lm_dataset` cuts: full blocks per map batch of documents."""
    counts = corpus_token_counts()
    return sum(
        sum(counts[start : start + map_batch_size]) // block_size
        for start in range(0, len(counts), map_batch_size)
    )


PARAMETER_UNITS = "要的是参数个数本身（例如 123_456_789），不是以百万或十亿为单位的数"


# ---- chapter 0 ----------------------------------------------------------------------------------


@exercise("00.1")
def random_loss_bigger_vocab(answer) -> str:
    vocab = qwen_config()["vocab_size"]  # 151,936
    tiny_vocab = tiny_config()["vocab_size"]  # 4,096
    check_number(
        answer,
        math.log(vocab),
        abs_=0.3,
        hint=(  # 0.3: ln(vocab) rounded, or the loss a random model measures (11.81 at seed 42)
            "随机初始化的模型给每个词元的概率大约是多少？交叉熵是这个概率的负对数"
        ),
        traps=(
            (
                math.log(tiny_vocab),
                "这是词表 4096 时的数：词表变大，平均猜测时每个词元分到的概率就变小",
            ),
            (math.log2(vocab), "损失用的是自然对数（nat），不是以 2 为底"),
            (math.log10(vocab), "损失用的是自然对数（nat），不是以 10 为底"),
            (vocab, "这是词表的大小；损失是“猜中正确词元的概率”的负对数"),
            (1 / vocab, "这是每个词元分到的概率；损失是它的负对数"),
        ),
    )
    return "初始损失约等于 ln(词表大小)，与文本无关；真实的 1.5B 预训练就从 11.9 附近起步"


@exercise("00.2")
def unseen_word(answer) -> str:
    word = "模型预训练"  # not one of these characters is in the bundled corpus
    options = {"A": 1, "B": len(word), "C": len(word.encode())}  # whole word, chars, UTF-8 bytes
    count = count_tokens(word)
    correct = min(options, key=lambda letter: abs(options[letter] - count))  # the nearest
    check_choice(
        answer,
        correct,
        "ABCD",
        hint="字节级 BPE 从哪里开始，又靠什么把字节合并起来？",
        why_not={  # hints for the wrong options
            "A": "分词器的词表在训练分词器时就定死了，编码时不会再加新词",
            "B": "只有在训练语料里见过、被合并过的汉字才会是一个词元；这五个字一次也没出现过",
            "D": "字节级 BPE 的基本单位是 256 个字节，任何文本都能编码，没有 `<unk>`",
        },
    )
    return "分词器只对与训练语料相似的文本高效；真实的 Qwen2.5 分词器把这五个字编成 3 个词元"


# ---- chapter 1 ----------------------------------------------------------------------------------


@exercise("01.1")
def mha_extra_parameters(answer) -> str:
    config = qwen_config()
    gqa = qwen2_parameters(config)
    mha = qwen2_parameters({**config, "num_key_value_heads": config["num_attention_heads"]})
    check_number(
        answer,
        mha - gqa,
        rel=5e-3,
        unit_hint=PARAMETER_UNITS,
        hint=(  # 0.5 %: rounding
            "每层只有 K、V 两个投影变宽；别忘了偏置，也别忘了乘以层数"
        ),
        traps=(
            (mha, "要的是增加了多少，不是改动后的总量"),
            ((mha - gqa) / 2, "K 和 V 两个投影都变宽了"),
            ((mha - gqa) / config["num_hidden_layers"], "这是一层的增加量，模型有很多层"),
        ),
    )
    return "GQA 在这一项上省下了约 7% 的参数"


@exercise("01.2")
def max_micro_batch_80gb(answer) -> str:
    config = qwen_config()
    setup = dict(seq_len=2048, n_gpus=8, zero_stage=2)
    states, per_sequence = memory_gb(config, **setup)
    check_number(
        answer,
        max_micro_batch(config, 80, **setup),
        hint=(  # a count: exact
            "先分别算固定部分（权重 + 梯度 + 优化器，ZeRO-2 切到 8 卡）和每条序列的部分"
            "（激活 + logits），再看 80 GB 放得下几条序列"
        ),
        traps=(
            (math.floor(80 / per_sequence), "别忘了权重、梯度和优化器状态这部分固定开销"),
            (
                max_micro_batch(config, 80, **setup, checkpointing=False),
                "题目打开了梯度检查点：每层只保存输入，激活小得多",
            ),
            (
                math.floor((80 - states) / (per_sequence - 8 * 2048 * config["vocab_size"] / 1e9)),
                "logits 只算了一份：反向时同时有三份 fp32（每词元每词表项 12 字节）",
            ),
            (
                max_micro_batch(config, 80, **{**setup, "zero_stage": 0}),
                "ZeRO-2 把梯度和优化器状态切到了 8 张卡上",
            ),
        ),
    )
    return "实际训练还要给临时缓冲和显存碎片留余量"


@exercise("01.3")
def untied_growth_tiny(answer) -> str:
    tiny = tiny_config()
    tied = qwen2_parameters(tiny)  # 4,198,656, as chapter 1 counts on the meta device
    output = tiny["vocab_size"] * tiny["hidden_size"]  # the extra output matrix, no bias
    growth = 100 * output / tied
    qwen = qwen_config()
    check_number(
        answer,
        growth,
        abs_=0.5,
        hint=(  # 0.5 percentage points: 4.20M instead of the exact count passes
            "不共享时多出一个独立的输出矩阵：先算它的形状，再和原来的参数总量比"
        ),
        traps=(
            (
                100 * output / (tied + output),
                "这是输出矩阵在不共享之后的总量里占几成；问的是比原来增加了百分之几",
            ),
            (
                100 * qwen["vocab_size"] * qwen["hidden_size"] / qwen2_parameters(qwen),
                "这是 Qwen2.5-1.5B 的比例（第 3 节）；微型模型的宽度和词表缩小的倍数不一样",
            ),
            (output / tied, "要的是百分数（写 12.5 表示 12.5%），不是小数"),
            (
                100 * output / (tied - output),
                "分母是原来的参数总量（含共享的嵌入），不是不含嵌入的部分",
            ),
            (output, "这是多出的参数个数；问的是增加了百分之几"),
            (tied + output, "这是不共享时的参数总量；问的是增加了百分之几"),
        ),
    )
    return "1.5B 只多约 15%，微型模型却多四分之一：模型越小，嵌入占比越大，共享省得越多"


# ---- chapter 2 ----------------------------------------------------------------------------------


@exercise("02.1")
def byte_level_pieces(answer) -> str:
    check_choice(
        answer,
        "C",
        "ABCD",
        hint="想想字节级 BPE 的“字节”是怎么显示出来的",
        why_not={
            "A": (
                "文件编码若真坏了，`decode` 也还原不出汉字；"
                "可第 1 节里 decode(encode(text)) == text"
            ),
            "B": "字节级 BPE 能编码任意文本，根本不需要 `<unk>`",
            "D": "词元就是词表里的字符串，没有加密或哈希；看看 `decode` 的结果",
        },
    )
    return "`convert_ids_to_tokens` 显示的是字节的“替身字符”，`decode` 才拼回 UTF-8"


@exercise("02.2")
def loss_is_a_mean(answer) -> str:
    check_choice(
        answer,
        "A",
        "ABCD",
        hint="损失是总和还是平均？随机模型会利用上下文吗？",
        why_not={
            "B": "Hugging Face 模型返回的损失是每个词元的平均值，不是总和",
            "C": "随机模型还没学会利用上下文，上下文长短对它没有区别",
            "D": "填充位置的标签是 -100，本来就不计入损失",
        },
    )
    return "逐词元平均的损失与序列长短无关"


@exercise("02.3")
def vocab_mismatch(answer) -> str:
    check_choice(
        answer,
        "D",
        "ABCD",
        hint="嵌入层就是一张按 id 查行的表：表只有那么多行",
        why_not={
            "A": "扩大嵌入要显式调用 `resize_token_embeddings`，没有人会替你做",
            "B": "PyTorch 的嵌入查表不会取模：越界的 id 没有对应的行",
            "C": "分词器和模型是分别加载的两个对象，分词器不知道模型的词表有多大",
        },
    )
    return "所以第 5 章的脚本在训练前就检查 `len(tokenizer) <= vocab_size`"


# ---- chapter 3 ----------------------------------------------------------------------------------


@exercise("03.1")
def blocks_of_512(answer) -> str:
    blocks_128 = packed_blocks(128)
    check_number(
        answer,
        packed_blocks(512),
        rel=0.01,
        hint=(  # 1 %: a careful estimate passes
            "块长变为 4 倍，块数大约怎么变？每个 map 批还会丢掉不满一块的尾巴"
        ),
        traps=(
            (blocks_128, "块长变了，块数也会跟着变"),
            (4 * blocks_128, "块变长了，同样多的词元切出的块应该更少"),
        ),
    )
    return "块越长，每批丢掉的尾巴也越长，不过仍不到 1%"


@exercise("03.2")
def asserts_without_eos(answer) -> str:
    check_choices(
        answer,
        {"B", "D"},
        "ABCDE",
        missing="还有一条也会失败：哪些断言依赖文档之间的分隔符？",
        why_not={
            "A": "去掉 EOS 只是词元变少，切块仍然只保留完整的块",
            "C": "两种切法吃进的是同一个词元流，有没有 EOS 都切得一样",
            "E": "`lm_collator` 把 `input_ids` 复制成 `labels`，与内容无关",
        },
    )
    return "EOS 是块里唯一的文档边界"


@exercise("03.3")
def documents_per_block(answer) -> str:
    check_choices(
        answer,
        {"A", "D"},
        "ABCD",
        missing="还有一种改动也会让它变大：想想文档长度与块长之比",
        why_not={
            "B": "文档远长于块时，大多数块都落在一篇文档内部，这个数趋近于 1",
            "C": "map 的批大小只决定每批丢掉的尾巴，不改变一个块里装几篇文档",
        },
    )
    return "这个数大约是 1 + 块长 / 文档平均长度"


# ---- chapter 4 ----------------------------------------------------------------------------------


@exercise("04.1")
def gradient_accumulation(answer) -> str:
    check_choice(
        answer,
        "D",
        "ABCD",
        hint="先算每个优化器步的词元数，再想浮点加法的顺序",
        why_not={
            "A": "梯度累积：几个微批的梯度加在一起，才更新一次参数",
            "B": "每步的序列数：新设置的两个数相乘，和原来的比一比",
            "C": "想想浮点数：(a + b) + c 与 a + (b + c) 总是逐位相等吗？",
        },
    )
    return "梯度累积用时间换显存，优化的目标不变"


@exercise("04.2")
def bits_per_byte(answer) -> str:
    loss, bytes_per_token = 1.0, 2.4
    ln2 = math.log(2)
    from llm_pretrain.metrics import lm_metrics  # here: it pulls in torch and transformers

    expected = lm_metrics(loss, bytes_per_token)["bits_per_byte"]
    check_number(
        answer,
        expected,
        abs_=0.005,
        hint=(  # 0.005: three decimals, rounded either way
            "先把 nat 换算成 bit，再换算到每个字节；可以用 `lm_metrics` 验证"
        ),
        traps=(
            (loss / bytes_per_token, "损失的单位是 nat（自然对数），先换算成 bit"),
            (loss / ln2, "这是每个词元的比特数，还要换算到每个字节"),
            (loss / ln2 * bytes_per_token, "每个词元对应好几个字节：应该除以字节数，而不是乘"),
            (math.exp(loss), "这是困惑度，不是每字节比特数"),
        ),
    )
    return "每字节比特数与分词器无关，能比较词表不同的模型"


@exercise("04.3")
def resume_without_rng_state(answer) -> str:
    check_choice(
        answer,
        "D",
        "ABCD",
        hint="想想恢复之后，哪些操作还要抽随机数，哪些只由种子决定",
        why_not={
            "A": (
                "`attention_dropout=0.1` 让每个训练步都抽随机数："
                "恢复之后，它从哪个随机数状态接着抽？"
            ),
            "B": "数据顺序由什么决定？看看 Trainer（通过 accelerate）的采样器是怎么设种子的",
            "C": "Trainer 找不到这个文件时只在日志里记一条信息，然后继续",
        },
    )
    return "随机数状态只管 dropout 这类每步抽随机数的操作；没有 dropout 的模型删了它也逐位一致"


LR_RUNS = (1e-4, 1e-3, 1e-2, 1e-1)  # the four learning rates of exercise 04.4
LR_KEY = {"B", "C", "E"}  # what the course's CPU run shows (solutions/04 reads it off)


def lr_statements(curves: dict) -> dict[str, bool]:
    """Which statements of exercise 04.4 hold for `curves` ({lr: [(step, loss), ...]}), read off
    as the solution reads them."""
    points = {lr: [loss for _, loss in curves[lr]] for lr in LR_RUNS}
    final = {lr: losses[-1] for lr, losses in points.items()}
    rises = {
        lr: [b - a for a, b in zip(losses, losses[1:], strict=False) if b > a]
        for lr, losses in points.items()
    }
    start = math.log(tiny_config()["vocab_size"])  # a random model's loss, ln(4096)
    return {
        "A": all(
            a <= b <= c <= d
            for a, b, c, d in zip(*(points[lr] for lr in reversed(LR_RUNS)), strict=False)
        ),
        "B": final[1e-4] > 6.5,
        "C": max(points[1e-1]) > start + 1,
        "D": sum(rises[1e-2]) == min(sum(r) for r in rises.values()),
        "E": final[1e-2] < final[1e-3] and sum(r > 0.1 for r in rises[1e-2]) >= 2,
    }


@exercise("04.4")
def learning_rate_curves(answer, curves: dict | None = None) -> str:
    if curves is None:
        correct, whose = (
            LR_KEY,
            "按课程在 CPU 上跑出的曲线判断；把 `curves` 传给 check，就按你自己的曲线判断",
        )
    else:
        try:
            holds = lr_statements(curves)
        except (KeyError, TypeError, ValueError, IndexError):
            raise Retry(
                "`curves` 应当是题目代码算出的字典：四个学习率各有一串 (step, loss)"
            ) from None
        correct, whose = {letter for letter, held in holds.items() if held}, "按你画出的曲线判断"
    check_choices(
        answer,
        correct,
        "ABCDE",
        missing="还有说法与图相符：逐条核对每个说法，四条线都从头到尾看一遍",
        why_not={
            "A": "看 1e-1 那条线的前十几步：它一路都在下降吗？",
            "B": "看 1e-4 那条线最后一个点的高度",
            "C": "看 1e-1 那条线的最高点，和随机初始化时的损失（第 0 章算过）比一比",
            "D": "比一比每条线往上回弹的幅度：学习率大的线回弹得更厉害",
            "E": "两件事都要成立：30 步时谁更低，1e-2 那条线是否有几次明显的回弹",
        },
    )
    return (
        f"学习率太小走不动，太大先冲高再回落；Adam 每步走多远由学习率定，梯度裁剪拦不住（{whose}）"
    )


# ---- chapter 5 ----------------------------------------------------------------------------------


@exercise("05.1")
def accumulation_after_growing(answer) -> str:
    saved_world, micro_batch, accumulation, new_world = 2, 8, 4, 8
    per_step = saved_world * micro_batch * accumulation  # sequences per optimizer step, kept
    expected = per_step // (new_world * micro_batch)
    check_number(
        answer,
        expected,
        hint=(  # a count: exact
            "先算原来每个优化器步有多少条序列，续训时脚本让这个数保持不变"
        ),
        traps=(
            (accumulation, "照命令累积 4 次，8 卡每步的序列数就成了原来的 4 倍：脚本会让它变吗？"),
            (
                accumulation * new_world // saved_world,
                "卡多了，一轮微批的序列数变多，累积该变少",
            ),
            (per_step, "这是每步的序列数；问的是梯度累积步数"),
        ),
    )
    return "每步仍是 64 条序列，Trainer 按步数找到的数据位置才对得上"


@exercise("05.2")
def zero3_model_states(answer) -> str:
    config = qwen_config()
    states, _ = memory_gb(config, seq_len=2048, n_gpus=8, zero_stage=3)
    n = qwen2_parameters(config)
    check_number(
        answer,
        states,
        abs_=0.05,
        hint=(  # 0.05 GB: one decimal place
            "ZeRO-3 下每个参数的权重、梯度、优化器状态都切到了所有卡上：每参数共多少字节？"
        ),
        traps=(
            (
                memory_gb(config, seq_len=2048, n_gpus=8, zero_stage=2)[0],
                "这是 ZeRO-2 的数：ZeRO-3 还多切分了什么？",
            ),
            (states * 1e9 / 2**30, "课程里 1 GB = 1e9 字节（与第 1 章一致），不是 2**30"),
            (16 * n / 1e9, "题目问的是 8 卡时每张卡的用量"),
            (2 * n / 8 / 1e9, "要的是权重 + 梯度 + 优化器状态三项之和"),
            (
                16 * 1.5e9 / 8 / 1e9,
                f"用 {n:,} 而不是 1.5e9：“1.5B”是取整后的名字，"
                "这里差出的约 0.09 GB 超过了允许的误差",
            ),
        ),
    )
    return "代价是前向、反向时要临时收集权重，通信更多"


@exercise("05.3")
def leftovers_in_output_dir(answer) -> str:
    check_choices(
        answer,
        {"A", "E"},
        "ABCDE",
        missing="还有一样也会被拒绝：把每个名字和 `OUTPUT_NAMES` 逐个对一遍",
        why_not={
            "B": "`runs/` 正是 `--report_to tensorboard` 写的，脚本认得它",
            "C": "缺 `trainer_state.json` 的检查点只是不完整：脚本跳过它并给出警告",
            "D": "`wandb/` 是 `--report_to wandb` 离线记录的目录，脚本认得它",
        },
    )
    return "脚本只认自己写的名字；坏输入换来一行错误和退出码 2，磁盘上的东西一个字节都不动"


# ---- chapter 6 ----------------------------------------------------------------------------------


def train_flops_per_token(config: dict, seq_len: int) -> float:
    """6N + 12·L·d·T, counted as `llm_pretrain.metrics.flops_per_token` counts it: N is every
    parameter in a matrix multiply (tied embeddings: all of them; untied: all but the input
    embedding, which is a lookup)."""
    n = qwen2_parameters(config)
    if not config["tie_word_embeddings"]:
        n -= config["vocab_size"] * config["hidden_size"]
    return 6 * n + 12 * config["num_hidden_layers"] * config["hidden_size"] * seq_len


H200_PEAK_FLOPS = 989e12  # dense bf16, as in llm_pretrain.metrics.PEAK_BF16_TFLOPS


@exercise("06.1")
def days_at_4096(answer) -> str:
    config = qwen_config()
    tokens, n_gpus, mfu = 1e12, 16, 0.40

    def days(seq_len=4096, mfu=mfu, n_gpus=n_gpus, attention=True) -> float:
        per_token = train_flops_per_token(config, seq_len)
        if not attention:
            per_token = 6 * qwen2_parameters(config)
        return tokens / (n_gpus * mfu * H200_PEAK_FLOPS / per_token) / 86_400

    check_number(
        answer,
        days(),
        rel=0.03,
        hint=(  # 3 %: a rounded parameter count (1.5e9) still passes
            "先算每个词元的训练 FLOPs（块长 4096），再算一张卡每秒多少词元、16 张卡合起来多少，"
            "最后换算成天"
        ),
        traps=(
            (days(seq_len=2048), "块长变成了 4096：注意力那一项与块长成正比，也跟着变大"),
            (days(attention=False), "别漏了注意力那一项 12·L·d·T"),
            (days(mfu=1.0), "MFU 是 40%：卡的峰值算力只用上了四成"),
            (days(n_gpus=1), "16 张卡一起训练，每秒的词元数要乘以卡数"),
            (days() * 24, "单位是天，不是小时"),
            (days() * 86_400, "单位是天，不是秒"),
        ),
    )
    return "块长翻倍，每个词元只贵了约一成：1.5B 模型的算力大头是 6N"


@exercise("06.2")
def from_pretraining_to_sft(answer) -> str:
    check_choices(
        answer,
        {"A", "C", "E"},
        "ABCDE",
        missing="还有说法是对的：逐条对照第 5 节，想想掩码、结束符和打包各管什么",
        why_not={
            "B": (
                "Qwen 的填充符就是 EOS（`<|endoftext|>`），是一个合法的词元 id：损失只跳过标签"
                "为 -100 的位置，别的 id 都会被当作要预测的目标"
            ),
            "D": "SFT 是在已经学好的权重上小步调整：学习率通常比预训练的峰值小一个数量级",
        },
    )
    return "SFT 与预训练是同一个 Trainer，只是数据、标签和学习率不同"
