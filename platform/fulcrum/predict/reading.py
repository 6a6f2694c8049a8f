"""Corpus files read as a stream of Arrow blocks by Ray Data, one file after another (the
formats: fulcrum.predict.corpus), so that the driver can tell when a file is finished."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from ray.data.datasource.file_based_datasource import FileBasedDatasource

from fulcrum.predict.corpus import read_blocks
from fulcrum.predict.sources import SourceFile


class CorpusDatasource(FileBasedDatasource):
    def __init__(
        self,
        files: list[SourceFile],
        *,
        filesystem,
        text_column: str,
        block_rows: int,
        reserved: tuple[str, ...],
        text_pair_column: str | None = None,
    ):
        super().__init__([file.path for file in files], filesystem=filesystem)
        self.files = {file.path: file for file in files}
        self.text_column = text_column
        self.block_rows = block_rows
        self.reserved = reserved
        self.text_pair_column = text_pair_column

    def _open_input_source(self, filesystem, path: str, **open_args):
        # Random access for all: a Parquet footer is at the end, and tell() (how far into
        # the file a block ends, for the ETA) is only valid on a seekable file.
        return filesystem.open_input_file(path)

    def _read_stream(self, f, path: str) -> Iterator[pa.Table]:
        # One block per model call: the scorer takes blocks as they are.
        file = self.files[path]
        yield from read_blocks(
            f,
            path,
            file.format,
            file.size,
            self.text_column,
            self.block_rows,
            self.reserved,
            self.text_pair_column,
        )
