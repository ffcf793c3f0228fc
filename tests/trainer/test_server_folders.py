"""What a run shows its clients names the server's folders by placeholders, each folder by the
most specific one, and only where the whole folder is named."""
import sys
import sysconfig
from pathlib import Path

from services.server_folders import ServerFolders


def test_each_folder_is_replaced_by_its_own_placeholder_and_only_as_a_whole_name(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    site_packages = sysconfig.get_path("purelib")  # inside the prefix: the inner folder's placeholder wins
    text = (f'File "{site_packages}/torch/nn/modules/module.py", line 1773, in _call_impl\n'
            f"NotADirectoryError: [Errno 20] Not a directory: '{cache}/features/text/70'\n"
            f"the cache at {cache}.\n"
            f"{sys.prefix}/bin/python; {cache}-old/features; {cache}2")

    assert ServerFolders(cache).hidden(text) == (
        'File "<site-packages>/torch/nn/modules/module.py", line 1773, in _call_impl\n'
        "NotADirectoryError: [Errno 20] Not a directory: '<cache>/features/text/70'\n"
        "the cache at <cache>.\n"
        f"<python>/bin/python; {cache}-old/features; {cache}2")
