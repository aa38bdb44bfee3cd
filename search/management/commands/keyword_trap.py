"""Show a keyword trap: the full-text order and the reranked order of one query, side by side."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from search.services import ResultRow, SearchOutcome, SearchUnavailable, search_run

# Words match, meaning does not: most candidates are about Apple the company, not the fruit.
DEFAULT_QUERY = "苹果营养价值"
TITLE_WIDTH = 48


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _movement(row: ResultRow) -> str:
    if row.new_in_top:
        return "new"
    if not row.movement:
        return "="
    return f"{'↑' if row.movement > 0 else '↓'}{abs(row.movement)}"


def _title(row: ResultRow) -> str:
    title = " ".join(row.title.split())
    return title if len(title) <= TITLE_WIDTH else title[: TITLE_WIDTH - 1] + "…"


class Command(BaseCommand):
    help = "Run a query through search_run and print both orderings (SQL, and the rerank worker)."

    def add_arguments(self, parser):
        parser.add_argument("--query", default=DEFAULT_QUERY, help=f"default: {DEFAULT_QUERY}")
        parser.add_argument("--k", type=int, default=None, help="results per ordering")

    def handle(self, *args: object, **options: object) -> None:
        try:
            outcome = search_run(query=options["query"], k=options["k"])
        except SearchUnavailable as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"query: {outcome.query}")
        self.stdout.write(f"reranker: {self._model_line(outcome)}")
        for notice in outcome.notices:
            self.stdout.write(f"notice: {notice}")
        if not outcome.fulltext:
            self.stdout.write("No documents match this query.")
            return
        self.stdout.write(f"\nFull-text order ({outcome.candidate_count} candidates)")
        self.stdout.write(f"{'rank':>4}  {'title':<{TITLE_WIDTH}}  {'BM25':>8}  {'rerank':>7}")
        for row in outcome.fulltext:
            self.stdout.write(
                f"{row.fulltext_rank:>4}  {_title(row):<{TITLE_WIDTH}}  "
                f"{_score(row.fulltext_score):>8}  {_score(row.rerank_score):>7}"
            )
        self.stdout.write("\nReranked order")
        if not outcome.is_reranked:
            self.stdout.write("(not reranked: the full-text order stands)")
            return
        self.stdout.write(f"{'rank':>4}  {'title':<{TITLE_WIDTH}}  {'rerank':>7}  {'BM25':>8}  {'was':>4}  move")
        for row in outcome.reranked:
            self.stdout.write(
                f"{row.rerank_rank:>4}  {_title(row):<{TITLE_WIDTH}}  {_score(row.rerank_score):>7}  "
                f"{_score(row.fulltext_score):>8}  {row.fulltext_rank:>4}  {_movement(row)}"
            )
        self.stdout.write(f"\n{outcome.moved_count} of the top {len(outcome.reranked)} moved.")

    @staticmethod
    def _model_line(outcome: SearchOutcome) -> str:
        model = outcome.reranker
        if not model:
            return f"none answered ({outcome.rerank_status})"
        return f"{model.model} ({model.kind}, {model.device}, {model.dtype})"
