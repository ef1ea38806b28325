"""The chat UI: ``python app_gradio.py [--host 127.0.0.1] [--port 7860]`` (same as ``rag ui``)."""

import sys

from rag.cli import main

if __name__ == "__main__":
    sys.exit(main(["ui", *sys.argv[1:]]))
