"""benchmarks/grow_corpus.sh: a grown corpus starts as a hard-linked copy of another workdir, and growing it never
changes a file the two share (every file of a corpus, its shards and its store is written as a new file renamed into
place)."""

import os
import subprocess
from pathlib import Path

from pipeline.fs import file_sha256
from tests.conftest import REPO, build_tiny_workdir


def _contents(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): file_sha256(p)
            for p in sorted(root.rglob("*")) if p.is_file() and "_leases" not in p.parts}


def test_a_grown_hard_linked_copy_leaves_its_source_as_it_was(tmp_path):
    source, grown = tmp_path / "source", tmp_path / "grown"
    build_tiny_workdir(source, num_utterances=12)
    before = _contents(source)
    config = tmp_path / "grown.yaml"
    config.write_text(f"base: {REPO / 'configs' / 'tiny.yaml'}\nworkdir: {grown}\ncorpus:\n  num_utterances: 20\n")

    done = subprocess.run(["bash", str(REPO / "benchmarks" / "grow_corpus.sh"), str(grown), str(config), str(source)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    assert _contents(source) == before  # not one byte of the source changed
    grown_files = _contents(grown)
    shared = [rel for rel in before if (grown / rel).is_file()
              and os.stat(grown / rel).st_ino == os.stat(source / rel).st_ino]
    assert len(shared) > len(before) // 2  # most of the source is shared, not copied
    assert len([f for f in grown_files if f.startswith("shards/") and f.endswith(".tar")]) > \
        len([f for f in before if f.startswith("shards/") and f.endswith(".tar")])  # and it grew
    assert not (tmp_path / "grown.partial").exists()
