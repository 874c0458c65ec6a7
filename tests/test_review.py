"""``framework review``: docs/thread-answers.md is its output, regenerated and compared."""

from __future__ import annotations

from pathlib import Path

from tests.test_cli import run

DOC = Path(__file__).parent.parent / "docs" / "thread-answers.md"


def test_review_regenerates_the_docs_page() -> None:
    """Run through the installed command; the page in the docs must be its exact output
    (regenerate with `framework review > docs/thread-answers.md`)."""
    proc = run("review")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == DOC.read_text(), "docs/thread-answers.md is stale"


def test_every_answer_has_a_sentence_a_table_and_a_command() -> None:
    sections = DOC.read_text().split("\n## ")[1:]
    answered = [s for s in sections if not s.startswith("Not answered")]
    assert len(answered) >= 8
    for section in answered:
        assert "\n**Answer.** " in section
        assert "\n| design |" in section or "\n| site |" in section or "\n| modules |" in section
        assert "```sh\nframework bench " in section
