"""Every limit on reading one uploaded file, in one place: each guards the web process against a
hostile or broken file. The format modules read them here at call time (tests lower them here)."""

# The longest body one document may have: a big book; beyond it chunks and index get unwieldy.
MAX_BODY_CHARS = 5_000_000
# A PDF bomb can declare endless pages; a real book rarely passes this.
MAX_PDF_PAGES = 2_000
# Text extraction reads a page's drawing instructions in Python (2 to 5.6 s per MB of dense text
# operators here): a 25 KB file whose one page unpacks to 10 MB of them kept a web process busy
# for 3.5 minutes. A text page holds a few to tens of KB. Every page is sized before any text is
# extracted (unpacking is fast): a page above the first limit, or a file above the second, is
# refused in milliseconds.
MAX_PDF_PAGE_CONTENT_BYTES = 1024 * 1024
MAX_PDF_CONTENT_BYTES = 24 * 1024 * 1024
# Seconds of text extraction per file, checked after each page: the worst file costs this plus one
# page (at most MAX_PDF_PAGE_CONTENT_BYTES, about 5 s). 300 pages of dense text take 1.6 s.
MAX_PDF_SECONDS = 15
# Building the tree of an HTML file costs about 25 µs per tag (5 s for 200,000 one-line
# paragraphs); a 20 MB file of them would hold a web process for minutes.
MAX_HTML_TAGS = 100_000
# Finding the main content (trafilatura) costs about 0.2 ms a tag (2 s for 10,000); a page of
# more tags is read whole instead, as the visible text. Real pages have a few thousand.
MAX_HTML_MAIN_CONTENT_TAGS = 20_000
# A .docx is a zip: refuse it before extracting when it would unpack to more than this...
MAX_UNZIPPED_BYTES = 100 * 1024 * 1024
# ...or when a large member compresses better than any real document does (a zip bomb).
MAX_COMPRESSION_RATIO = 100
# Members smaller than this cannot hurt, however well they compress.
RATIO_CHECK_MIN_BYTES = 1024 * 1024
# The XML of a .docx's text part read at most, however well it is compressed (reading costs
# about 0.1 s per MB here). 1,000,000 characters in runs of 40 take 2.4 MB of it (python-docx),
# so the MAX_BODY_CHARS of text fit in about 12 MB, with room for heavier formatting.
MAX_DOCX_XML_BYTES = 32 * 1024 * 1024
# One paragraph or table row is held in memory whole until it ends (about 15 bytes of memory per
# byte of its XML: a 28 MB one-paragraph part took 436 MB and 5.6 s). A long real paragraph with
# a run per word is a few hundred KB.
MAX_DOCX_BLOCK_XML_BYTES = 2 * 1024 * 1024
# A document's properties (its title) are a few KB.
MAX_DOCX_CORE_BYTES = 1024 * 1024
# Parsing Markdown (markdown-it-py, in Python) costs 45 to 175 µs a line (200,000 list items:
# 35 s and 419 MB). A file of more lines is stored as plain text, as written, not rendered.
MAX_MARKDOWN_LINES = 10_000
# Control bytes (NUL and other C0 codes besides tab/newline/CR/FF/ESC) beyond both of these make
# a "text" file binary; a handful of stray NULs in a real text file are only stripped.
MAX_CONTROL_SHARE = 0.01
MAX_STRAY_CONTROLS = 8
# Bytes looked at when sniffing for binary content.
SNIFF_BYTES = 64 * 1024
