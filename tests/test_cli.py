"""The minifinn command line: help, formats, unknown commands."""

from compiler.cli import main


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "formats" in out and "mac-sweep" in out


def test_formats_command(capsys):
    assert main(["formats", "e4m3", "int:4", "--dot-length", "4608"]) == 0
    out = capsys.readouterr().out
    assert "FLOAT<4,3,7>" in out and "range [-480, 480]" in out
    assert "length-4608 dot product with itself: 50 bits" in out and "range [-8, 7]" in out


def test_formats_command_bad_format(capsys):
    assert main(["formats", "fp9"]) == 2
    assert "unknown number format 'fp9'" in capsys.readouterr().err  # errors go to stderr
