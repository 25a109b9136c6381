"""Generate the bundled sample corpus in the seq-monkey JSONL format (`{"text": ...}` per line).

Every document is produced by the templates below from a seeded RNG, so the file is the same
byte for byte on every machine. Facts (arithmetic, divisors, calendar days, unit conversions)
are computed, so they are true; the diaries and stories are plainly fictional. Mostly Simplified
Chinese with about one document in five in English, and lengths from one sentence to a few KB.

    python tools/make_corpus.py            # writes assets/corpus/seq_monkey_sample.jsonl
    python tools/make_corpus.py --check    # exit 1 if the committed file differs
"""

import argparse
import datetime
import json
import math
import random
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "assets" / "corpus" / "seq_monkey_sample.jsonl"
SEED = 20240601
N_DOCS = 4000

DIGITS = "零一二三四五六七八九"
WEEKDAYS_ZH = "一二三四五六日"
NAMES_ZH = ["小明", "小红", "小刚", "小丽", "阿强", "小芳", "老王", "李老师", "张阿姨", "小林"]
NAMES_EN = ["Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry", "Ivy", "Jack"]
THINGS_ZH = [("苹果", "个"), ("铅笔", "支"), ("书", "本"), ("气球", "个"), ("橘子", "个"),
             ("饼干", "块"), ("邮票", "张"), ("贴纸", "张"), ("鸡蛋", "个"), ("花", "朵")]
THINGS_EN = ["apples", "pencils", "books", "balloons", "oranges", "cookies", "stamps", "eggs"]
CITIES_ZH = ["北京", "上海", "广州", "成都", "西安", "杭州", "武汉", "哈尔滨", "昆明", "青岛"]
WEATHER_ZH = ["晴", "多云", "阴", "小雨", "中雨", "大风", "小雪", "雾"]
PLACES_ZH = ["公园", "图书馆", "菜市场", "学校", "河边", "山上", "博物馆", "火车站"]
ACTIONS_ZH = ["散步", "看书", "买菜", "画画", "钓鱼", "爬山", "参观展览", "等朋友"]
FEELINGS_ZH = ["很开心", "有点累", "觉得很充实", "学到了新东西", "想早点回家", "心情平静"]
UNITS = [("千米", "米", 1000), ("米", "厘米", 100), ("千克", "克", 1000), ("小时", "分钟", 60),
         ("分钟", "秒", 60), ("元", "角", 10), ("升", "毫升", 1000), ("吨", "千克", 1000)]


def zh_number(n: int) -> str:
    """Write 0 <= n < 10000 in Chinese numerals (`21` -> `二十一`)."""
    if n < 10:
        return DIGITS[n]
    parts, zero = [], False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        d = n // value % 10
        if d:
            if zero:
                parts.append("零")
            parts.append(("" if (unit == "十" and n < 20) else DIGITS[d]) + unit)
            zero = False
        elif parts:
            zero = True
    return "".join(parts)


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def number_fact_zh(rng: random.Random) -> str:
    n = rng.randint(2, 999)
    ds = divisors(n)
    kind = "质数" if len(ds) == 2 else "合数"
    parity = "偶数" if n % 2 == 0 else "奇数"
    return (f"{n}（读作{zh_number(n)}）是一个{parity}，也是一个{kind}。"
            f"它的因数有{'、'.join(map(str, ds))}，共{len(ds)}个。"
            f"{n}的平方是{n * n}，各位数字之和是{sum(map(int, str(n)))}。")


def number_fact_en(rng: random.Random) -> str:
    n = rng.randint(2, 999)
    ds = divisors(n)
    kind = "a prime" if len(ds) == 2 else "a composite number"
    return (f"The number {n} is {'even' if n % 2 == 0 else 'odd'} and {kind}. "
            f"Its divisors are {', '.join(map(str, ds))}. Its square is {n * n}.")


def word_problem_zh(rng: random.Random) -> str:
    name = rng.choice(NAMES_ZH)
    thing, unit = rng.choice(THINGS_ZH)
    a, b = rng.randint(2, 60), rng.randint(1, 40)
    if rng.random() < 0.5:
        return (f"{name}原来有{a}{unit}{thing}，后来又得到了{b}{unit}。"
                f"问：{name}现在一共有多少{unit}{thing}？"
                f"答：{a}+{b}={a + b}，一共有{a + b}{unit}。")
    a += b
    return (f"{name}有{a}{unit}{thing}，送给同学{b}{unit}。"
            f"问：{name}还剩多少{unit}{thing}？答：{a}-{b}={a - b}，还剩{a - b}{unit}。")


def word_problem_en(rng: random.Random) -> str:
    name, thing = rng.choice(NAMES_EN), rng.choice(THINGS_EN)
    a, b = rng.randint(2, 12), rng.randint(2, 12)
    return (f"{name} has {a} bags with {b} {thing} in each bag. "
            f"How many {thing} does {name} have? "
            f"{a} x {b} = {a * b}, so {name} has {a * b} {thing}.")


def times_table_zh(rng: random.Random) -> str:
    a = rng.randint(1, 9)
    lines = []
    for b in range(a, 10):
        p = a * b
        said = zh_number(p) if p >= 10 else "得" + zh_number(p)
        lines.append(f"{DIGITS[a]}{DIGITS[b]}{said}")
    return "乘法口诀：" + "，".join(lines) + "。"


def date_fact_zh(rng: random.Random) -> str:
    day = datetime.date(2000, 1, 1) + datetime.timedelta(days=rng.randint(0, 12000))
    return (f"{day.year}年{day.month}月{day.day}日是星期{WEEKDAYS_ZH[day.weekday()]}，"
            f"是这一年的第{day.timetuple().tm_yday}天。")


def date_fact_en(rng: random.Random) -> str:
    day = datetime.date(2000, 1, 1) + datetime.timedelta(days=rng.randint(0, 12000))
    weekday, yday = day.strftime("%A"), day.timetuple().tm_yday
    return f"{day.isoformat()} was a {weekday}, day {yday} of the year."


def unit_fact_zh(rng: random.Random) -> str:
    big, small, factor = rng.choice(UNITS)
    k = rng.randint(1, 30)
    return f"{k}{big}等于{k * factor}{small}。"


def diary_zh(rng: random.Random) -> str:
    day = datetime.date(2020, 1, 1) + datetime.timedelta(days=rng.randint(0, 1500))
    lo = round(8 - 12 * math.cos(2 * math.pi * (day.month - 1) / 12)) + rng.randint(-5, 5)
    weather = rng.choice([w for w in WEATHER_ZH if lo <= 0 or w != "小雪"])
    return (f"{day.month}月{day.day}日，{rng.choice(CITIES_ZH)}，{weather}，"
            f"气温{lo}到{lo + rng.randint(3, 12)}度。"
            f"{rng.choice(NAMES_ZH)}去{rng.choice(PLACES_ZH)}"
            f"{rng.choice(ACTIONS_ZH)}，回来以后{rng.choice(FEELINGS_ZH)}。")


def story_zh(rng: random.Random) -> str:
    a, b = rng.sample(NAMES_ZH, 2)
    place, action = rng.choice(PLACES_ZH), rng.choice(ACTIONS_ZH)
    return (f"一天早上，{a}约{b}一起去{place}{action}。路上{b}说：“今天{rng.choice(WEATHER_ZH)}，"
            f"我们要早点出发。”到了{place}，两个人{action}了{zh_number(rng.randint(1, 5))}个小时，"
            f"最后{a}{rng.choice(FEELINGS_ZH)}。")


def code_en(rng: random.Random) -> str:
    a, b = rng.randint(1, 50), rng.randint(1, 50)
    op, sym = rng.choice([("add", "+"), ("sub", "-"), ("mul", "*")])
    value = {"+": a + b, "-": a - b, "*": a * b}[sym]
    return (f"def {op}(a, b):\n    return a {sym} b\n\n"
            f"assert {op}({a}, {b}) == {value}\n")


ZH_PARAGRAPHS = [number_fact_zh, word_problem_zh, times_table_zh, date_fact_zh, unit_fact_zh,
                 diary_zh, story_zh]
EN_PARAGRAPHS = [number_fact_en, word_problem_en, date_fact_en, code_en]


def make_document(rng: random.Random) -> str:
    """One document: a few to many paragraphs of one language, joined by newlines."""
    pool = EN_PARAGRAPHS if rng.random() < 0.2 else ZH_PARAGRAPHS
    n_paragraphs = min(int(rng.expovariate(1 / 6)) + 1, 120)
    topics = rng.sample(pool, k=min(len(pool), rng.randint(1, 3)))
    return "\n".join(rng.choice(topics)(rng) for _ in range(n_paragraphs))


def render() -> bytes:
    rng = random.Random(SEED)
    lines = [json.dumps({"text": make_document(rng)}, ensure_ascii=False) for _ in range(N_DOCS)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed file differs")
    args = parser.parse_args()
    data = render()
    if args.check:
        if not OUT.exists() or OUT.read_bytes() != data:
            sys.exit(f"{OUT} is stale: run python tools/make_corpus.py")
        return
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(data)
    print(f"wrote {OUT} ({len(data):,} bytes, {N_DOCS} documents)")


if __name__ == "__main__":
    main()
