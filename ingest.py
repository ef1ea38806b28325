"""Index the documents: ``python ingest.py [PATH ...] [--rebuild] [--json]`` (same as
``rag ingest``). Default: the ``corpus/`` folder."""

import sys

from rag.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))
