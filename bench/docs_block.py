"""Replace a generated block of a Markdown file: the text between its BEGIN and END markers."""

import re
from pathlib import Path


def write_block(path: Path, name: str, text: str) -> None:
    """Put `text` between `<!-- BEGIN name -->` and `<!-- END name -->` in `path`.

    Raises:
        ValueError: The file has no such pair of markers.
    """
    page = path.read_text()
    pattern = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(<!-- END {name} -->)", re.S)
    if not pattern.search(page):
        raise ValueError(f"{path} has no <!-- BEGIN {name} --> ... <!-- END {name} --> block")
    path.write_text(pattern.sub(lambda m: m.group(1) + text.rstrip("\n") + "\n" + m.group(2), page))
