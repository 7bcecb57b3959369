"""Typed errors raised by the retrieval core.

Each message says what went wrong and what to do about it; the HTTP layer maps
the types to status codes and the CLI prints the message on one line.
"""


class QAError(Exception):
    """Base class of every error the core raises on purpose."""


class EmptyCorpusError(QAError):
    """The corpus folder holds no usable document."""


class CorpusNotFoundError(QAError):
    """The corpus folder does not exist."""


class IndexMissingError(QAError):
    """No index has been built at the configured location."""


class IndexCorruptError(QAError):
    """An index directory is damaged: a file is missing, truncated or altered."""


class IndexMismatchError(QAError):
    """An index was built with another model or other settings than the ones configured."""


class ModelUnavailableError(QAError):
    """The configured encoder cannot be loaded from local files."""


class DocumentNotFoundError(QAError):
    """No indexed document has the requested id."""


class InvalidQueryError(QAError):
    """The question or its parameters cannot be searched."""


class EvalDataError(QAError):
    """An evaluation file cannot be read or has the wrong shape."""


class BuildInProgressError(QAError):
    """Another build is already running against the same index directory."""


class SearchUnavailableError(QAError):
    """A search process stopped; the server is starting new ones."""


class ShardUnavailableError(SearchUnavailableError):
    """A shard of a cluster-served index did not answer in time, even on a second replica."""


class InvalidFilterError(InvalidQueryError):
    """A metadata filter names a field no document has, or holds a malformed value."""


class ClusterError(QAError):
    """A cluster build could not reach its Ray cluster, or the cluster failed to embed."""
