"""Where inputs are read and outputs written: a local folder, or any fsspec URL (s3://...).

A `Store` is a root plus relative POSIX paths, with one class per kind of storage behind one
interface (`base.Store`): `local.LocalStore` for folders, `remote.ObjectStore` for fsspec URLs.
`Store.at(location, confined=...)` picks the kind; nothing else constructs one.

A store carries only its root (and, for folders, whether links may lead out of it). It is small
and picklable: tasks carry the root to the workers, and each worker process opens the file
system itself with its own credentials (environment variables such as `AWS_ENDPOINT_URL`,
profiles, fsspec config), so no secret ever travels in the task graph or on a command line.

Local outputs are written atomically (see `outputs`); object-store outputs with one PUT, so
an object is complete or absent. Either way the output carries the marker that names its
settings and source (`outputs.marker`); objects also get it as user metadata.
"""

from pipeline.storage.base import Entry, Store, as_location, check_locations, is_url
from pipeline.storage.local import FS_CLOCK_SLACK_NS, LocalStore
from pipeline.storage.remote import RUN_METADATA, ObjectStore, content_type

__all__ = [
    "FS_CLOCK_SLACK_NS",
    "RUN_METADATA",
    "Entry",
    "LocalStore",
    "ObjectStore",
    "Store",
    "as_location",
    "check_locations",
    "content_type",
    "is_url",
]
