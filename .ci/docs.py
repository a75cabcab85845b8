"""The documentation's kept outputs and pages: refresh them, check they are current, check the rendered pages.

    python .ci/docs.py refresh [NB ...]  execute notebooks (as nbdev_test does, slow cells included), keep their outputs
    python .ci/docs.py check [NB ...]    re-execute the notebooks that keep outputs and compare their text outputs;
                                         check that nbs/index.ipynb mirrors README.md
    python .ci/docs.py pages [OUT] [NB]  process the notebooks as nbdev_proc_nbs does (no Quarto needed), render each
                                         page to HTML, assert its figures and tables (not run by CI: it executes every
                                         page's imports and show_doc cells)
    python .ci/docs.py index             rewrite nbs/index.ipynb (the site's home page) from README.md, a cell a section

README.md is the source of the home page: `index` mirrors it into nbs/index.ipynb section by section, and `check`
fails when the two differ (so an edit to README.md that is not mirrored is caught).

Kept outputs are what a cell returns or prints (stdout, results, figures); stderr (warnings, progress bars) is never
kept. An output that names a scratch path, a memory address or a timing would differ on every run, so `refresh`
refuses it with the cell named. `check` compares text outputs exactly and figures by count (PNG bytes vary with
library versions), skipping `slow` and `cuda` cells (their outputs come from `refresh`).
"""
import base64, hashlib, re, subprocess, sys, time
from pathlib import Path

from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from fastcore.xtras import working_directory

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/"nbs"
SKIP_ALWAYS = {"cuda"}  # no GPU on the machines that refresh or check
NONDETERMINISTIC = re.compile(r"/tmp/|/work/|/root/|/home/|0x[0-9a-f]{8,}|\d+(\.\d+)? ?(s|ms|sec|seconds)\b elapsed")
# Pages and the figures / tables each must show (a figure is a PNG, a table an HTML or markdown table).
EXPECT = {
    "00_core": dict(tables=4),
    "01_roles": dict(tables=1),
    "02_loss": dict(figures=1),
    "03_longclip": dict(figures=1),
    "05_captioner": dict(figures=1, tables=1),
    "06_diversity": dict(figures=4, tables=2),
    "07_judge": dict(tables=1),
    "08_filter": dict(figures=1, tables=1),
    "08a_filter_world": dict(figures=3, tables=6),
    "10_eval_data": dict(tables=1),
    "11_evaluate": dict(tables=6),
    "11a_compare": dict(tables=1),
    "12_train": dict(figures=1),
    "13_scenes": dict(figures=1, tables=1),
    "13a_pretrain": dict(figures=1, tables=1),
    "14_world": dict(tables=2),
    "15_pipeline": dict(tables=1),
    "16_commands": dict(tables=4),
    "index": dict(tables=2),
}


def notebooks()->list[Path]:
    "Every documentation notebook, in order."
    return sorted(p for p in NBS.rglob("*.ipynb") if not p.name.startswith("_") and ".ipynb_checkpoints" not in p.parts)


def _skip(flags:set):
    "The cell filter nbdev_test uses: skip markdown, exports, `eval: false` and flagged cells."
    def no_eval(cell):
        if cell.cell_type != "code" or "nbdev_export" + "(" in cell.source: return True
        direc = getattr(cell, "directives_", {}) or {}
        if direc.get("eval:", [""])[0].lower() == "false": return True
        return bool(flags & direc.keys())
    return no_eval


def execute(path:Path, flags:set):
    "Run a notebook like `nbdev_test` does (same shell, same working directory); returns it with outputs."
    from nbdev.process import NBProcessor
    from nbdev.frontmatter import FrontmatterProc
    nb = NBProcessor(path, procs=FrontmatterProc, process=True).nb
    for cell in nb.cells:
        if cell.cell_type == "code": cell.outputs = []  # execnb leaves a silent cell's old outputs in place
    shell = CaptureShell(path)
    with working_directory(path.parent): shell.run_all(nb, exc_stop=True, preproc=_skip(flags))
    return nb


def kept(outputs:list)->list:
    "The outputs a page keeps: no stderr, no execution counts."
    out = []
    for o in outputs:
        if o.get("output_type") == "stream" and o.get("name") != "stdout": continue
        if o.get("output_type") == "error": raise RuntimeError(f"an error output: {o.get('ename')}: {o.get('evalue')}")
        o = dict(o)
        if o.get("output_type") == "execute_result": o["execution_count"] = None  # nbformat needs the key
        out.append(o)
    return out


def text_of(outputs:list)->list[str]:
    "The comparable text of outputs: streams and text data; figures as a count marker."
    parts = []
    for o in outputs:
        if o.get("output_type") == "stream": parts.append("".join(o.get("text", "")))
        data = o.get("data", {})
        for mime in ("text/markdown", "text/html", "text/plain"):
            if mime in data: parts.append("".join(data[mime])); break
        if "image/png" in data: parts.append("<figure>")
    return parts


def refresh(paths:list[Path]):
    "Execute each notebook with slow cells and keep its outputs (checked for run-specific text)."
    for path in paths:
        t0 = time.time()
        nb = execute(path, SKIP_ALWAYS)
        raw = read_nb(path)
        by_id = {c.get("id"): c for c in nb.cells}
        for cell in raw.cells:
            if cell.cell_type != "code": continue
            ran = by_id.get(cell.get("id"))
            cell.outputs = kept(ran.get("outputs", [])) if ran is not None else []
            cell.execution_count = None
            bad = [t for t in text_of(cell.outputs) if NONDETERMINISTIC.search(t)]
            if bad: sys.exit(f"{path.name}: cell {cell.get('id')} prints run-specific text "
                             f"({NONDETERMINISTIC.search(bad[0]).group(0)!r}); make its output deterministic")
        write_nb(raw, path)
        subprocess.run([str(Path(sys.executable).parent/"nbdev_clean"), "--fname", str(path)], check=True)
        size = sum(len(base64.b64decode("".join(o["data"]["image/png"]))) for c in raw.cells if c.cell_type == "code"
                   for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
        print(f"{path.relative_to(ROOT)}: outputs refreshed in {time.time() - t0:.0f} s; figures {size / 1024:.0f} KiB")


def check(paths:list[Path])->int:
    "Re-execute notebooks that keep outputs (slow cells skipped) and compare their text outputs; returns failures."
    failures = 0
    for path in paths:
        raw = read_nb(path)
        if not any(c.get("outputs") for c in raw.cells if c.cell_type == "code"): continue
        nb = execute(path, SKIP_ALWAYS | {"slow"})
        by_id = {c.get("id"): c for c in nb.cells}
        for cell in raw.cells:
            ran = by_id.get(cell.get("id"))
            if cell.cell_type != "code" or ran is None or "slow" in (getattr(ran, "directives_", {}) or {}): continue
            if "nbdev_export(" in cell.source: continue
            want, got = text_of(cell.get("outputs", [])), text_of(kept(ran.get("outputs", [])))
            if want != got:
                failures += 1
                print(f"{path.relative_to(ROOT)}: cell {cell.get('id')} output is stale\n  kept: {want!r:.300}\n"
                      f"  now:  {got!r:.300}")
        print(f"{path.relative_to(ROOT)}: outputs checked")
    return failures


def readme_sections(text:str)->list[str]:
    "README.md cut before each `## ` heading (outside code blocks): the home page's cells, in order."
    sections, fenced = [[]], False
    for line in text.splitlines():
        if line.startswith("```"): fenced = not fenced
        if line.startswith("## ") and not fenced: sections.append([])
        sections[-1].append(line)
    return ["\n".join(lines).strip("\n") for lines in sections if "".join(lines).strip()]


def sync_index(readme:Path=ROOT/"README.md", index:Path=NBS/"index.ipynb"):
    "Rewrite the home page's cells from README.md; a section keeps its cell's id by its heading (small diffs)."
    raw = read_nb(index)
    ids = {"".join(c.source).split("\n")[0]: c.get("id") for c in raw.cells}
    def cell(text):
        head = text.split("\n")[0]
        return dict(cell_type="markdown", id=ids.get(head) or hashlib.sha1(head.encode()).hexdigest()[:8], metadata={},
                    source=text)
    raw.cells = [cell(text) for text in readme_sections(readme.read_text(encoding="utf-8"))]
    write_nb(raw, index)
    subprocess.run([str(Path(sys.executable).parent/"nbdev_clean"), "--fname", str(index)], check=True)
    print(f"{index.relative_to(ROOT)}: {len(raw.cells)} sections from {readme.name}")


def check_index(readme:Path=ROOT/"README.md", index:Path=NBS/"index.ipynb")->int:
    "1 (and the first section that differs) when the home page does not mirror README.md, else 0."
    want = readme_sections(readme.read_text(encoding="utf-8"))
    got = ["".join(c.source).strip("\n") for c in read_nb(index).cells]
    if want == got:
        print(f"{index.relative_to(ROOT)}: mirrors {readme.name}")
        return 0
    first = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
    where = (want + got)[first].splitlines()[0] if first < max(len(want), len(got)) else "?"
    print(f"{index.relative_to(ROOT)}: differs from {readme.name} at section {first + 1} ({where!r}); "
          f"run `python .ci/docs.py index`")
    return 1


def process(src:Path):
    "Process one notebook into _proc/ as `nbdev_proc_nbs` does (show_doc, directives, hidden cells)."
    from nbdev.processors import FilterDefaults
    from nbdev.serve_drv import main
    dst = ROOT/"_proc"/src.relative_to(NBS)
    dst.parent.mkdir(parents=True, exist_ok=True)
    main((src, dst, FilterDefaults))


def pages(out:Path, paths:list[Path])->int:
    "Process the notebooks as nbdev_docs would, render each page to HTML, and check its figures and tables."
    from concurrent.futures import ThreadPoolExecutor
    from nbconvert import HTMLExporter
    # `nbdev_proc_nbs` would first install Quarto (a download), rewrite nbs/nbdev.yml and the sidebar, and stop at the
    # first page that fails; the processing itself needs none of that: one fresh process per page, as nbdev does
    def run(path):
        p = subprocess.run([sys.executable, __file__, "process", str(path)], cwd=ROOT, capture_output=True, text=True)
        said = [l for l in p.stderr.splitlines() if re.match(r"[\w.]*(Error|Exception)\b", l)] or ["?"]
        return None if p.returncode == 0 else " ".join(said[-1].split())[:300]
    with ThreadPoolExecutor(2) as ex: errors = list(ex.map(run, paths))
    out.mkdir(parents=True, exist_ok=True)
    exporter, failures = HTMLExporter(), 0
    for path, error in zip(paths, errors):
        name = path.relative_to(NBS).with_suffix("")
        if error:
            failures += 1
            print(f"FAIL {name}: processing stopped: {error}")
            continue
        html, _ = exporter.from_filename(str(ROOT/"_proc"/path.relative_to(NBS)))
        (out/f"{path.stem}.html").write_text(html, encoding="utf-8")
        figures, tables = len(re.findall(r'<img[^>]*src="data:image/png', html)), html.count("<table")
        want = EXPECT.get(path.stem, {})
        ok = figures >= want.get("figures", 0) and tables >= want.get("tables", 0)
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {figures} figures, {tables} tables"
              + (f" (expected at least {want})" if not ok else ""))
    return failures


if __name__ == "__main__":
    cmd, args = (sys.argv[1:2] or ["check"])[0], sys.argv[2:]
    if cmd == "refresh": refresh([Path(a).resolve() for a in args] or notebooks())
    elif cmd == "check": sys.exit(1 if check([Path(a).resolve() for a in args] or notebooks()) + check_index() else 0)
    elif cmd == "index": sync_index()
    elif cmd == "process": process(Path(args[0]).resolve())  # one page, in a process of its own (used by `pages`)
    elif cmd == "pages":
        dirs = [a for a in args if not a.endswith(".ipynb")]
        nbs = [Path(a).resolve() for a in args if a.endswith(".ipynb")]
        sys.exit(1 if pages(Path(dirs[0]) if dirs else ROOT/"_docs_check", nbs or notebooks()) else 0)
    else: sys.exit(__doc__)
