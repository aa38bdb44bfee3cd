"""The SQL a search runs: the query's terms, the candidate statements, pools, lookups and filters.

search.backends.postgres.planning compiles these into a plan; search.backends.postgres.scoring
runs them. Values are always parameters; only these constants are formatted into statements.
"""

# Whether a query's text holds words at all, stop words included (the `simple` configuration keeps them).
HAS_WORDS_SQL = "SELECT numnode(plainto_tsquery('simple', %(text)s)) > 0"

# Lexemes of each clause (by its position in `texts`) with their statistics in the collection.
# A lexeme the collection lacks comes back with a NULL term; no row at all: no lexemes.
TERMS_SQL = """
WITH lexemes AS (
    SELECT q.ord AS clause, v.lexeme
    FROM unnest(%(texts)s::text[]) WITH ORDINALITY AS q(text, ord)
    CROSS JOIN LATERAL unnest(to_tsvector(%(config)s::regconfig, q.text)) AS v
), stats AS (
    SELECT c.id, c.doc_count, c.title_tokens, c.body_tokens,
           (c.k1, c.b, c.title_weight) = (%(k1)s::float8, %(b)s::float8, %(title_weight)s::float8) AS impacts_current,
           (SELECT count(*) FROM (SELECT 1 FROM search_bm25_change x WHERE x.collection_id = c.id
                                  LIMIT %(changes)s + 1) logged) AS changes
    FROM search_bm25_collection c WHERE c.name = %(collection)s
)
SELECT l.clause, l.lexeme, t.id, t.df, s.doc_count, s.title_tokens, s.body_tokens,
       s.id, s.changes, s.impacts_current, k.term_id IS NOT NULL AS packed
FROM lexemes l
LEFT JOIN stats s ON true
LEFT JOIN search_bm25_term t ON t.collection_id = s.id AND t.lexeme = l.lexeme AND t.df > 0
LEFT JOIN search_bm25_pack k ON k.term_id = t.id
ORDER BY l.clause, l.lexeme
"""
WEIGHT = (
    "search_bm25_weight(p.tf_title, p.tf_body, p.title_tokens, p.body_tokens, "
    "%(avg_title)s, %(avg_body)s, %(k1)s, %(b)s, %(title_weight)s)"
)
QUERY_TERMS = """q AS (
    SELECT * FROM unnest(%(term_ids)s::bigint[], %(idfs)s::float8[], %(exhaustive)s::bool[])
        WITH ORDINALITY AS q(term_id, idf, exhaustive, position)
)"""
# A term's postings, read from the term-impact index (index-only). The query's terms arrive as an
# array the planner cannot see into; reading per term (OFFSET 0 keeps the subquery apart) is what
# stops it from scanning every posting of every collection instead.
TERM_POSTINGS = "CROSS JOIN LATERAL (SELECT * FROM search_bm25_posting x WHERE x.term_id = q.term_id OFFSET 0) p"
# Every term rare enough to score exhaustively: the scores come straight from its postings.
# A document's weights are summed in the order of the query's terms (ORDER BY q.position), as
# packed.scored sums them: floating-point addition is not associative, and without the order the
# sum followed the plan (a sorted aggregate meets a document's terms in any order), so the same
# query could score a document one bit apart from one database to the next.
SCORE_EXHAUSTIVE = f"""scored AS (
    SELECT p.document_id, sum(q.idf * {WEIGHT} ORDER BY q.position) AS score
    FROM q {TERM_POSTINGS}
    GROUP BY p.document_id
)"""  # noqa: S608 (constants only; values are parameters)
CANDIDATES = """
WITH {query_terms}, {scoring}, ranked AS (
    SELECT s.document_id, s.score FROM scored s {join_document}
    WHERE {filters}
    ORDER BY s.score DESC, s.document_id
    LIMIT %(limit)s
)
SELECT d.id, d.title, d.language, d.source, d.content_hash, r.score
FROM ranked r JOIN documents_document d ON d.id = r.document_id
ORDER BY r.score DESC, r.document_id
"""
# Some term too common. The pool: every posting of the rare terms, the best postings of each common
# one, each with its weight (one index-only read per term, best impact first).
POOL_READ = f"""
WITH {QUERY_TERMS}
SELECT p.document_id, q.term_id, q.idf * {WEIGHT}
FROM q CROSS JOIN LATERAL (
    SELECT * FROM search_bm25_posting x WHERE x.term_id = q.term_id
    ORDER BY x.impact DESC LIMIT CASE WHEN q.exhaustive THEN NULL ELSE %(pool_size)s END
) p
"""  # noqa: S608 (constants only; values are parameters)
# The weights a pooled document's score still lacks: primary-key lookups of only those documents.
# Per document (LATERAL, OFFSET 0): given both arrays at once, the planner reads every posting of
# a common term from the term index and filters them by document (35 ms at 1M documents, for 24
# documents; docs/benchmarks.md section 4).
POOL_FILL = f"""
WITH {QUERY_TERMS}
SELECT p.document_id, q.term_id, q.idf * {WEIGHT}
FROM unnest(%(ids)s::bigint[]) AS i(document_id)
CROSS JOIN LATERAL (
    SELECT * FROM search_bm25_posting x
    WHERE x.document_id = i.document_id AND x.term_id = ANY(%(term_ids)s::bigint[]) OFFSET 0
) p
JOIN q ON q.term_id = p.term_id
"""  # noqa: S608 (constants only; values are parameters)
# A required phrase of common words: its documents join the pool from the GIN index, so they are
# scored even when none of them is among its words' best postings.
PHRASE_POOL = """
SELECT d.id FROM documents_document d
WHERE d.collection = %(collection)s AND d.search_vector @@ phraseto_tsquery(%(config)s::regconfig, %(phrase)s)
LIMIT %(pool_size)s
"""
# Which pooled documents pass the query's required phrases and exclusions.
POOL_FILTER = """
SELECT s.document_id FROM unnest(%(ids)s::bigint[]) AS s(document_id) {join_document} WHERE {filters}
"""
JOIN_DOCUMENT = "JOIN documents_document d ON d.id = s.document_id"
ROWS = "SELECT id, title, language, source, content_hash FROM documents_document WHERE id = ANY(%(ids)s::bigint[])"
# Filters on a scored document (`s`), and on its row (`d`) when phrases must be checked.
HAS_TERM = "EXISTS (SELECT 1 FROM search_bm25_posting x WHERE x.document_id = s.document_id AND x.term_id = ANY({}))"
HAS_PHRASE = "d.search_vector @@ phraseto_tsquery(%(config)s::regconfig, {})"
IN_LANGUAGES = "d.language = ANY(%(languages)s::text[])"
# The facet filters beside the language (search.backends.base.Narrowing).
OF_SOURCE = "d.source = %(source)s"
ADDED_SINCE = "d.created_at >= %(added_since)s"
# Chinese has no spaces between words and documents are segmented into overlapping sub-words, so a
# Chinese (or mixed) phrase is required as the text itself.
HAS_TEXT = "strpos(lower(d.title || ' ' || d.body), lower({})) > 0"
