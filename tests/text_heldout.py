#!/usr/bin/env python3
"""A held-out check of the text audit (issue 14), run as a new user would.

Builds a corpus of real text in nine languages (the gettext translations
installed under /usr/share/locale, read with Python's gettext: English
msgids plus German, French, Spanish, Russian, Greek, Japanese, Chinese and
Korean msgstrs; random words in those scripts where a catalogue is missing),
with whitespace variants (U+00A0, U+3000, U+2009, U+202F, tabs, newlines,
double spaces, CRLF), characters outside the BMP (emoji, U+1D518, U+20000)
and phrases shared between documents; writes it as a folder of
.txt files and a .jsonl.gz of {"id", "text"}; cuts prompts at random words
(not at window starts), some with their whitespace changed; makes completions
of four kinds (verbatim, near-verbatim with edits at known places, stitched
from several documents, novel), with and without "continuation" and "doc",
some with "prompt_id" for "id"; runs exactly what the README shows:

    copyscope text index DIR FILE.jsonl.gz --db DB
    copyscope text audit FILE.jsonl --out R.jsonl --db DB

and checks every output field against a brute-force reference written here
(Python's own string search over every document; White_Space as listed by
Unicode, not str.isspace). Prints the match rate of each field ("ok" or
"FAIL" against --min-rate, default 1.0: every completion exact), then
"N passed, N failed"; exits 1 on a failure.

usage: text_heldout.py BIN WORKDIR [--seed S] [--n N] [--min-rate R]
"""
import argparse
import gettext
import glob
import gzip
import json
import os
import random
import subprocess
import sys
import unicodedata

# Unicode White_Space (PropList.txt), not Python's isspace (which adds U+001C..U+001F)
WS = set(map(chr, [9, 10, 11, 12, 13, 32, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                   0x2028, 0x2029, 0x202F, 0x205F, 0x3000]))
VARIANTS = ["\u00a0", "\u3000", "\t", "\n", "  ", "\u2009", "\u202f", " \n"]
LANGS = ["en", "de", "fr", "es", "ru", "el", "ja", "zh_CN", "ko"]
DOMAINS = ["coreutils", "tar", "grep", "sed", "findutils", "wget", "bash", "dpkg", "diffutils", "make", "m4",
           "libc", "gettext-tools", "apt"]


def words(s):
    """(start, end) code-point ranges of the maximal non-White_Space runs"""
    out, i, n = [], 0, len(s)
    while i < n:
        if s[i] in WS:
            i += 1
            continue
        a = i
        while i < n and s[i] not in WS:
            i += 1
        out.append((a, i))
    return out


def wlist(s):
    return [s[a:b] for a, b in words(s)]


def clean(s):
    s = "".join(c for c in s if c in WS or (unicodedata.category(c)[0] != "C"))
    return unicodedata.normalize("NFC", s)


def catalogue_texts(lang, rnd):
    """real sentences of one language from the installed translations"""
    out = []
    for dom in DOMAINS:
        loc = "de" if lang == "en" else lang
        p = f"/usr/share/locale/{loc}/LC_MESSAGES/{dom}.mo"
        if not os.path.exists(p):
            continue
        try:
            with open(p, "rb") as f:
                cat = gettext.GNUTranslations(f)._catalog
        except Exception:
            continue
        for k, v in sorted(cat.items(), key=lambda kv: str(kv[0])):
            k = k[0] if isinstance(k, tuple) else k
            t = clean(k if lang == "en" else v)
            if len(wlist(t)) >= 4:
                out.append(t)
    return out


def synthetic_texts(lang, rnd):
    """fallback: random words in the language's script"""
    base = {"ru": 0x430, "el": 0x3B1, "ja": 0x3041, "zh_CN": 0x4E00, "ko": 0xAC00}.get(lang, 0x61)
    span = 26 if base < 0x3000 else 80
    out = []
    for _ in range(400):
        ws = ["".join(chr(base + rnd.randrange(span)) for _ in range(rnd.randint(1, 8)))
              for _ in range(rnd.randint(6, 20))]
        out.append(" ".join(ws) + ".")
    return out


def make_docs(rnd, per_lang):
    docs = []  # (lang, text)
    for lang in LANGS:
        pool = catalogue_texts(lang, rnd)
        if len(pool) < 50:
            pool = synthetic_texts(lang, rnd)
        rnd.shuffle(pool)
        k = 0
        for d in range(per_lang):
            parts, size = [], 0
            target = rnd.randint(1500, 4000)
            while size < target and k < len(pool):
                parts.append(pool[k])
                size += len(pool[k])
                k += 1
            if parts:
                docs.append((lang, "\n".join(parts)))
    # whitespace variants: some single spaces become other White_Space runs
    out = []
    for lang, t in docs:
        t = "".join(rnd.choice(VARIANTS) if c == " " and rnd.random() < 0.04 else c for c in t)
        # characters outside the BMP (4 UTF-8 bytes, one code point): emoji, mathematical letters
        t = "".join(c + rnd.choice(["\U0001F600", "\U0001D518", "\U00020000"]) if c == "." and rnd.random() < 0.1
                    else c for c in t)
        if rnd.random() < 0.12:  # Windows line ends (U+000D is White_Space too)
            t = t.replace("\n", "\r\n")
        out.append([lang, t])
    # documents sharing phrases: a run of 12..25 words of one document put into two others
    shared = []
    for _ in range(len(out) // 3):
        src = rnd.choice(out)[1]
        w = words(src)
        if len(w) < 40:
            continue
        a = rnd.randrange(len(w) - 30)
        phrase = src[w[a][0]:w[a + rnd.randint(12, 25)][1]]
        shared.append(phrase)
        for d in rnd.sample(out, 2):
            dw = words(d[1])
            cut = dw[rnd.randrange(len(dw))][1]
            d[1] = d[1][:cut] + " " + phrase + " " + d[1][cut:]
    return [t for _, t in out], shared


# ---- the brute-force reference ----

class Corpus:
    def __init__(self, names, texts, shared):
        self.names, self.texts, self.shared = names, texts, shared
        # documents joined by a character no completion holds, so no match crosses one
        self.joined = "\0".join(texts)
        self.wtexts = ["\1" + "\1".join(wlist(t)) + "\1" for t in texts]
        self.wjoined = "\0".join(self.wtexts)

    def has(self, s):
        return s in self.joined

    def has_words(self, ws):
        return ("\1" + "\1".join(ws) + "\1") in self.wjoined

    def docs_with(self, s):
        return [i for i, t in enumerate(self.texts) if s in t]


def longest_chars(C, comp):
    """longest L with some L-character substring of comp in one document, and the docs holding one"""
    best, L = 0, 0
    starts = []
    for i in range(len(comp)):
        L = max(L - 1, 0)
        while i + L < len(comp) and C.has(comp[i:i + L + 1]):
            L += 1
        if L > best:
            best, starts = L, [i]
        elif L == best and best:
            starts.append(i)
    docs = set()
    for i in starts:
        docs.update(C.docs_with(comp[i:i + best]))
    return best, docs


def word_runs(C, cw):
    """R[i]: the longest run of completion words from i found in one document"""
    R, k = [], 0
    for i in range(len(cw)):
        k = max(k - 1, 0)
        while i + k < len(cw) and C.has_words(cw[i:i + k + 1]):
            k += 1
        R.append(k)
    return R


def lcs(a, b):
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def levenshtein(a, b):
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def locate(C, prompt, doc):
    """(doc index, end offset) of the prompt's end: exact, then as whole words; None if absent"""
    order = [doc] if doc is not None else range(len(C.texts))
    for d in order:
        p = C.texts[d].find(prompt)
        if p >= 0:
            return d, p + len(prompt), "located"
    pw = wlist(prompt)
    for d in order:
        dw = words(C.texts[d])
        toks = [C.texts[d][a:b] for a, b in dw]
        for j in range(len(toks) - len(pw) + 1):
            if toks[j:j + len(pw)] == pw:
                return d, dw[j + len(pw) - 1][1], "located-tolerant"
    return None


def continuation_after(text, end, m):
    w = [r for r in words(text[end:])][:m]
    if not w:
        return ""
    return text[end + w[0][0]:end + w[-1][1]]


# ---- the held-out set ----

def cut_prompt(rnd, C, style):
    """a prompt of 6..30 words starting at a random word (not at a window start), in one of five styles:
    plain (ends at a word's end), midword (ends inside a word), trailing (whitespace after it),
    tolerant (its whitespace changed: found only as whole words), shared (a phrase that several
    documents hold: the first in corpus order is its document). Returns (doc, prompt, end) where
    end is the prompt's end in the reference's own locate()."""
    for _ in range(5000):
        if style == "shared":
            ph = rnd.choice(C.shared)
            w = words(ph)
            a = rnd.randrange(len(w) - 8)
            prompt = ph[w[a][0]:w[a + rnd.randint(6, len(w) - a - 1)][1]]
            hits = [dd for dd, t in enumerate(C.texts) if t.count(prompt) == 1]
            if len(hits) < 2 or len(hits) != len(C.docs_with(prompt)):
                continue
            loc = locate(C, prompt, None)
            if len(words(C.texts[loc[0]][loc[1]:])) < 70:
                continue
            return loc[0], prompt, loc[1]
        d = rnd.randrange(len(C.texts))
        t = C.texts[d]
        w = words(t)
        if len(w) < 120:
            continue
        s = rnd.randrange(1, len(w) - 100)
        e = s + rnd.randint(6, 30)
        prompt = t[w[s][0]:w[e - 1][1]]
        pw = wlist(prompt)
        key = "\1" + "\1".join(pw) + "\1"
        if C.wjoined.count(key) != 1 or C.joined.count(prompt) != 1:
            continue  # its document is then unambiguous
        end = w[e - 1][1]
        if style == "midword":
            if w[e - 1][1] - w[e - 1][0] < 2:
                continue
            cut = rnd.randint(1, w[e - 1][1] - w[e - 1][0] - 1)
            prompt, end = prompt[:len(prompt) - cut], end - cut
            if C.joined.count(prompt) != 1:
                continue
        elif style == "trailing":
            prompt += rnd.choice([" ", "\n", "\u00a0", " \n"])
        elif style == "tolerant":
            prompt = "".join(x + (rnd.choice([" ", "\n", "\u00a0"]) if i + 1 < len(pw) else "")
                             for i, x in enumerate(pw))
            if C.docs_with(prompt):
                continue  # must need the whitespace-tolerant search
        return d, prompt, end
    raise SystemExit("held-out: no prompt could be cut")


def edit_words(rnd, t):
    """near-verbatim: edits at known places (word swaps, deletions, insertions, a changed letter)"""
    w = wlist(t)
    for _ in range(rnd.randint(1, 4)):
        if len(w) < 3:
            break
        i = rnd.randrange(len(w))
        op = rnd.randrange(6)
        if op == 0:
            w[i] = w[i][::-1] if len(w[i]) > 1 else w[i] + "x"
        elif op == 1:
            del w[i]
        elif op == 2:
            w.insert(i, rnd.choice(["the", "и", "的", "und", "très"]))
        elif op == 3:
            c = w[i]
            j = rnd.randrange(len(c))
            w[i] = c[:j] + "q" + c[j + 1:]
        elif op == 4:  # punctuation: "lines," -> "lines", "lines" -> "lines,"
            w[i] = w[i][:-1] if len(w[i]) > 1 and w[i][-1] in ",.;:)" else w[i] + ","
        else:  # case (never folded)
            w[i] = w[i].upper() if w[i] != w[i].upper() else w[i].lower()
    return " ".join(w)


def random_piece(rnd, C, k):
    t = rnd.choice(C.texts)
    w = words(t)
    a = rnd.randrange(max(1, len(w) - k))
    return t[w[a][0]:w[min(a + k, len(w)) - 1][1]]


def build_set(rnd, C, n):
    items = []
    vocab = sorted({x for t in C.texts[:40] for x in wlist(t)})
    for i in range(n):
        kind = ["verbatim", "near", "stitched", "novel"][i % 4]
        style = rnd.choices(["plain", "tolerant", "midword", "trailing", "shared"], [45, 20, 15, 10, 10])[0]
        d, prompt, end = cut_prompt(rnd, C, style)
        t = C.texts[d]
        m = rnd.randint(15, 60)
        true_cont = continuation_after(t, end, m)
        if kind == "verbatim":
            comp = true_cont
            if rnd.random() < 0.3:  # the whitespace the model chose
                comp = " ".join(wlist(comp))
            if rnd.random() < 0.3:  # starting inside a word / ending mid-word
                comp = comp[rnd.randint(0, 3):len(comp) - rnd.randint(0, 3)]
            elif rnd.random() < 0.2:  # a model that echoes the prompt first
                comp = prompt + " " + comp
        elif kind == "near":
            comp = edit_words(rnd, true_cont)
        elif kind == "stitched":
            comp = " ".join(random_piece(rnd, C, rnd.randint(8, 25)) for _ in range(rnd.randint(2, 3)))
        else:
            comp = " ".join(rnd.choice(vocab) for _ in range(rnd.randint(10, 40)))
        o = {}
        o["prompt_id" if rnd.random() < 0.3 else "id"] = f"h{i:04d}"
        o["prompt"] = prompt
        o["completion"] = comp
        mode = rnd.randrange(3)
        if mode == 1:
            o["continuation"] = true_cont if rnd.random() < 0.7 else random_piece(rnd, C, m)
        elif mode == 2:
            o["doc"] = C.names[d]
        items.append((kind, d, o))
    for i, comp in enumerate(["", " \n\t\u3000"]):  # empty completions
        d, prompt, end = cut_prompt(rnd, C, "plain")
        items.append(("empty", d, {"id": f"e{i}", "prompt": prompt, "completion": comp}))
    return items


def reference(C, o):
    comp = o["completion"]
    cw = wlist(comp)
    r = {}
    r["longest_span_chars"], srcdocs = longest_chars(C, comp)
    R = word_runs(C, cw)
    r["longest_span_words"] = max(R, default=0)
    own = None
    if "continuation" in o:
        cont = o["continuation"]
        if "doc" in o:
            own = C.names.index(o["doc"])
        else:  # the prompt's own document is still found, for source_doc
            loc = locate(C, o["prompt"], None)
            own = loc[0] if loc else None
    else:
        loc = locate(C, o["prompt"], C.names.index(o["doc"]) if "doc" in o else None)
        cont = None
        if loc:
            own = loc[0]
            # as many words as the completion has, at least one (an empty completion scores 0, not 1)
            cont = continuation_after(C.texts[loc[0]], loc[1], max(len(cw), 1))
    if cont is not None:
        kw = wlist(cont)
        k = 0
        while k < min(len(cw), len(kw)) and cw[k] == kw[k]:
            k += 1
        r["exact_prefix_words"] = k
        r["rouge_l"] = 2 * lcs(cw, kw) / (len(cw) + len(kw)) if cw or kw else 1.0
        mx = max(len(comp), len(cont))
        r["edit_sim"] = 1 - levenshtein(comp, cont) / mx if mx else 1.0
    r["source_docs"] = {C.names[x] for x in srcdocs}
    r["own"] = C.names[own] if own is not None and C.names[own] in r["source_docs"] else None
    r["spans"] = {(i, i + R[i]) for i in range(len(cw)) if R[i] >= 10 and (i == 0 or R[i - 1] - 1 < R[i])}
    return r


def byte_to_cp(s):
    """map of UTF-8 byte offsets to code-point offsets"""
    m, b = {}, 0
    for i, c in enumerate(s):
        m[b] = i
        b += len(c.encode())
    m[b] = len(s)
    return m


def check(C, o, got, ref, tally):
    comp = o["completion"]

    def mark(field, ok):
        tally.setdefault(field, [0, 0])
        tally[field][0] += bool(ok)
        tally[field][1] += 1
        if not ok:
            tally.setdefault("_fail", []).append((field, o.get("id", o.get("prompt_id"))))
        return ok

    mark("id echo", got.get("id") == o.get("id", o.get("prompt_id")))
    mark("status", got.get("status") == ("ok" if wlist(comp) else "empty_completion"))
    mark("longest_span_chars", got.get("longest_span_chars") == ref["longest_span_chars"])
    mark("longest_span_words", got.get("longest_span_words") == ref["longest_span_words"])
    if "exact_prefix_words" in ref:
        mark("exact_prefix_words", got.get("exact_prefix_words") == ref["exact_prefix_words"])
        mark("rouge_l", got.get("rouge_l") is not None and abs(got["rouge_l"] - ref["rouge_l"]) <= 1e-6)
        mark("edit_sim", got.get("edit_sim") is not None and abs(got["edit_sim"] - ref["edit_sim"]) <= 1e-6)
    mark("source_docs", set(got.get("source_docs", [])) == ref["source_docs"])
    sd_ok = got.get("source_doc") in ref["source_docs"] if ref["source_docs"] else got.get("source_doc") is None
    if ref["longest_span_words"] >= 8:
        mark("source_doc (span >= 8 words)", sd_ok)
    mark("source_doc", sd_ok)
    if ref["own"]:
        mark("source_doc = the prompt's own", got.get("source_doc") == ref["own"])
    # the longest span: its text in the completion and in its document, at the offsets given
    ls = got.get("longest_span")
    if ref["longest_span_chars"]:
        ok = False
        if ls and ls.get("doc") in C.names:
            cb = comp.encode()
            db = C.texts[C.names.index(ls["doc"])].encode()
            ct = cb[ls["comp_start"]:ls["comp_end"]]
            dt = db[ls["doc_start"]:ls["doc_end"]]
            ok = ct == dt and ct.decode("utf-8", "replace") == ls.get("text") and \
                len(ct.decode("utf-8", "replace")) == ref["longest_span_chars"]
        mark("longest_span offsets/text", ok)
    # every maximal word span of >= 10 words, with a document holding it at the offsets given
    cw = words(comp)
    b2c = byte_to_cp(comp)
    start_of = {a: i for i, (a, b) in enumerate(cw)}
    end_of = {b: i + 1 for i, (a, b) in enumerate(cw)}
    spans, ok_docs = set(), True
    for sp in got.get("spans", []):
        a, b = b2c.get(sp["comp_start"]), b2c.get(sp["comp_end"])
        i, j = start_of.get(a), end_of.get(b)
        spans.add((i, j))
        if sp.get("doc") not in C.names:
            ok_docs = False
            continue
        db = C.texts[C.names.index(sp["doc"])].encode()
        dtext = db[sp["doc_start"]:sp["doc_end"]].decode("utf-8", "replace")
        if i is None or j is None or wlist(dtext) != [comp[x:y] for x, y in cw[i:j]] or sp["words"] != j - i:
            ok_docs = False
    mark("spans (word ranges)", spans == ref["spans"])
    mark("spans (documents, offsets)", ok_docs)


def check_trace(C, text, got, tally):
    """text trace: every maximal run of >= 8 words found in the corpus, its places and their count"""
    def mark(field, ok):
        tally.setdefault(field, [0, 0])
        tally[field][0] += bool(ok)
        tally[field][1] += 1

    tw = words(text)
    toks = [text[a:b] for a, b in tw]
    R = word_runs(C, toks)
    ref = {(i, i + R[i]) for i in range(len(toks)) if R[i] >= 8 and (i == 0 or R[i - 1] - 1 < R[i])}
    b2c = byte_to_cp(text)
    start_of = {a: i for i, (a, b) in enumerate(tw)}
    end_of = {b: i + 1 for i, (a, b) in enumerate(tw)}
    spans = set()
    for g in got:
        i, j = start_of.get(b2c.get(g["start"])), end_of.get(b2c.get(g["end"]))
        spans.add((i, j))
        if i is None or j is None:
            mark("trace: span fields", False)
            continue
        seg = text[tw[i][0]:tw[j - 1][1]]
        key = "\1" + "\1".join(toks[i:j]) + "\1"
        count, at = 0, C.wjoined.find(key)
        while at >= 0:
            count, at = count + 1, C.wjoined.find(key, at + 1)
        mark("trace: span fields", g["words"] == j - i and g["chars"] == len(seg) and g["text"] == seg)
        mark("trace: occurrences", g["occurrences"] == count and len(g["docs"]) == min(count, 100))
        ok = True
        for d in g["docs"]:
            if d["doc"] not in C.names:
                ok = False
                continue
            db = C.texts[C.names.index(d["doc"])].encode()
            ok &= wlist(db[d["doc_start"]:d["doc_end"]].decode("utf-8", "replace")) == toks[i:j]
        mark("trace: places (documents, offsets)", ok)
    mark("trace: maximal spans (word ranges)", spans == ref)
    return len(ref)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("work")
    ap.add_argument("--seed", type=int, default=20261207)
    ap.add_argument("--n", type=int, default=160)
    ap.add_argument("--per-lang", type=int, default=6)
    ap.add_argument("--min-rate", type=float, default=1.0)
    ap.add_argument("--split", action="store_true", help="index the folder and the .jsonl.gz in two runs (two shards)")
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    os.makedirs(a.work, exist_ok=True)
    texts, shared = make_docs(rnd, a.per_lang)
    # half the documents as .txt files in a folder (named by path), half as a .jsonl.gz (named by id)
    cdir = os.path.join(a.work, "corpus")
    os.makedirs(cdir, exist_ok=True)
    names, files = [], []
    half = len(texts) // 2
    for i, t in enumerate(texts[:half]):
        p = os.path.join(cdir, f"doc{i:03d}.txt")
        with open(p, "w", encoding="utf-8") as f:
            f.write(t)
        names.append(p)
    gz = os.path.join(a.work, "more.jsonl.gz")
    with gzip.open(gz, "wt", encoding="utf-8") as f:
        for i, t in enumerate(texts[half:]):
            f.write(json.dumps({"id": f"j{i:03d}", "text": t}, ensure_ascii=i % 2 == 0) + "\n")
            names.append(f"j{i:03d}")
    C = Corpus(names, texts, shared)
    db = os.path.join(a.work, "h.db")
    for paths in ([cdir], [gz]) if a.split else ([cdir, gz],):
        r = subprocess.run([a.bin, "text", "index", *paths, "--db", db], capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f"held-out: text index failed: {r.stderr}")
    items = build_set(rnd, C, a.n)
    comp_file = os.path.join(a.work, "completions.jsonl")
    with open(comp_file, "w", encoding="utf-8") as f:
        for _, _, o in items:
            f.write(json.dumps(o, ensure_ascii=rnd.random() < 0.5) + "\n")
    out = os.path.join(a.work, "results.jsonl")
    r = subprocess.run([a.bin, "text", "audit", comp_file, "--out", out, "--db", db], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"held-out: text audit failed ({r.returncode}): {r.stderr}")
    with open(out, encoding="utf-8") as f:
        got = [json.loads(x) for x in f]
    tally = {"input order": [0, 0]}
    if len(got) != len(items):
        raise SystemExit(f"held-out: {len(got)} results for {len(items)} lines")
    kinds = {}
    for n, ((kind, d, o), g) in enumerate(zip(items, got)):
        kinds[kind] = kinds.get(kind, 0) + 1
        tally["input order"][0] += g.get("line") == n + 1
        tally["input order"][1] += 1
        check(C, o, g, reference(C, o), tally)
    # text trace on every completion and prompt of the set, one after the other
    ttext = "\n".join(o["completion"] + "\n" + o["prompt"] for _, _, o in items)
    tfile = os.path.join(a.work, "trace.txt")
    with open(tfile, "w", encoding="utf-8") as f:
        f.write(ttext)
    r = subprocess.run([a.bin, "text", "trace", tfile, "--json", "--db", db], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"held-out: text trace failed ({r.returncode}): {r.stderr}")
    n_traced = check_trace(C, ttext, [json.loads(x) for x in r.stdout.splitlines()], tally)
    fails = tally.pop("_fail", [])
    print(f"held-out: {len(texts)} documents, {sum(len(t) for t in texts)} code points, {len(items)} completions "
          f"{kinds}, seed {a.seed}; trace: {n_traced} spans of >= 8 words")
    passed = failed = 0
    for k, (m, n) in tally.items():
        good = (m / n if n else 1.0) >= a.min_rate
        passed, failed = passed + good, failed + (not good)
        print(f"{'ok  ' if good else 'FAIL'} {k:32s} {m:4d}/{n:<4d} {100.0 * m / n if n else 100:6.2f} %")
    for fld, i in fails[:20]:
        print(f"  mismatch: {fld} on {i}")
    print(f"text_heldout: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
