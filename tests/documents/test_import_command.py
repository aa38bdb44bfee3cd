"""`manage.py import_documents`: files and folders, one line per file, a summary, BEIR ids."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from documents.models import Document
from tests.support.files import text_pdf, word_document

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[list[str], str]:
    out, err = StringIO(), StringIO()
    call_command("import_documents", *args, stdout=out, stderr=err)
    return out.getvalue().splitlines(), err.getvalue()


def write_beir_corpus(path: Path, count: int) -> None:
    lines = [
        {"_id": f"cran-{n}", "title": f"Flow study {n}", "text": f"Boundary layer case {n}."} for n in range(count)
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")


def test_it_reports_each_file_and_a_summary(tmp_path, collection):
    (tmp_path / "deep" / "deeper").mkdir(parents=True)
    (tmp_path / "a.txt").write_text("Plain notes about pumps.", encoding="utf-8")
    (tmp_path / "deep" / "b.pdf").write_bytes(text_pdf("A paper about valves."))
    (tmp_path / "deep" / "deeper" / "c.docx").write_bytes(word_document("A memo about gears."))
    (tmp_path / "deep" / "fake.pdf").write_bytes(b"not a pdf at all")
    (tmp_path / "deep" / "copy.txt").write_text("Plain notes about pumps.", encoding="utf-8")
    (tmp_path / "table.csv").write_text("a,b\n", encoding="utf-8")
    (tmp_path / ".hidden.txt").write_text("hidden", encoding="utf-8")
    single = tmp_path.parent / f"{tmp_path.name}-single.md"
    single.write_text("# Single\nA file named on its own.", encoding="utf-8")

    lines, err = run(str(tmp_path), str(single), "--collection", collection)

    assert lines == [
        f"{tmp_path / 'a.txt'}: created 1 document",
        f"{tmp_path / 'deep' / 'b.pdf'}: created 1 document",
        f"{tmp_path / 'deep' / 'copy.txt'}: skipped as duplicate of document "
        f"#{Document.objects.get(collection=collection, source='a.txt').pk}",
        f"{tmp_path / 'deep' / 'deeper' / 'c.docx'}: created 1 document",
        f"{tmp_path / 'deep' / 'fake.pdf'}: rejected: the file is named .pdf but is not a PDF "
        "(it is text or other data)",
        f"{single}: created 1 document",
        "6 files: created 4 documents, skipped 1 duplicate, rejected 1 file; ignored 1 file of other types in folders",
    ]
    assert "importing" in err and "doc" in err  # the tqdm bar goes to stderr
    assert Document.objects.filter(collection=collection).count() == 4


def test_it_keeps_beir_ids_and_batches_the_inserts(tmp_path, collection, django_assert_max_num_queries):
    corpus = tmp_path / "corpus.jsonl"
    write_beir_corpus(corpus, 7)

    # 7 records in batches of 3: a handful of statements per batch, not per document.
    with django_assert_max_num_queries(30):
        lines, _ = run(str(corpus), "--collection", collection, "--batch-size", "3")

    assert lines == [
        f"{corpus}: created 7 documents",
        "1 file: created 7 documents, skipped 0 duplicates, rejected 0 files",
    ]
    stored = Document.objects.filter(collection=collection)
    assert sorted(stored.values_list("external_id", flat=True)) == sorted(f"cran-{n}" for n in range(7))
    assert stored.get(external_id="cran-3").title == "Flow study 3"


def test_it_lists_the_rejected_records_of_a_partly_imported_file(tmp_path, collection):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "1", "text": "fine"}\n{"_id": "2"}\nnot json\n', encoding="utf-8")
    lines, _ = run(str(corpus), "--collection", collection)
    assert lines == [
        f"{corpus}: created 1 document, rejected 2",
        "    rejected line 2: no text: the object needs a `content`, `text` or `body` field",
        "    rejected line 3: invalid JSON at column 1: Expecting value",
        "1 file: created 1 document, skipped 0 duplicates, rejected 0 files and 2 records in partly imported files",
    ]


def test_it_reports_a_missing_path(tmp_path, collection):
    lines, _ = run(str(tmp_path / "nope.txt"), "--collection", collection)
    assert lines[0] == f"{tmp_path / 'nope.txt'}: rejected: cannot read the file (No such file or directory)"


def test_it_refuses_an_empty_folder(tmp_path):
    with pytest.raises(CommandError, match="no files to import"):
        run(str(tmp_path))
