"""The API's list pages: `?page=N`, and `?page_size=M` up to MAX_PAGE_SIZE."""

from __future__ import annotations

from rest_framework.pagination import PageNumberPagination

# Rows a list answers by default (the documents and judgments lists).
DEFAULT_PAGE_SIZE = 50
# Rows one page may have at most: a larger page_size is cut to it. A document row carries its
# whole body, so 200 rows can already be megabytes.
MAX_PAGE_SIZE = 200


class ApiPagination(PageNumberPagination):
    """DRF's page-number pagination with a client-chosen page size, capped (a page_size that is not
    a whole number from 1 up is ignored, as DRF does, and the default size is used)."""

    page_size = DEFAULT_PAGE_SIZE
    page_size_query_param = "page_size"
    page_size_query_description = (
        f"Rows per page: 1 to {MAX_PAGE_SIZE} (larger is cut to {MAX_PAGE_SIZE}; default {DEFAULT_PAGE_SIZE})."
    )
    max_page_size = MAX_PAGE_SIZE
