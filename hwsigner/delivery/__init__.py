"""The four outputs of one credential, side by side, and the margins that decide their refresh.

- ``keeper``: one set of credentials kept fresh for many readers (single flight, last good);
- ``cache``: ``credential-process --cache``, on disk;
- ``credfile``: the shared credentials file, and ``update``'s loop;
- ``endpoints``: the local IMDSv2 and container endpoints of ``serve``;
- ``boto``: the botocore credential provider behind ``hwsigner.boto3_session``.

The margins below are every delivery mode's answer to "how close to expiry is too close", in
seconds, named for what each decides (DESIGN.md section 10 holds the table they will follow).
This module imports nothing: a cached ``credential-process`` reads ``CACHE_REUSE_MARGIN``.
"""

# serve and the Python API: a keeper fetches new credentials once fewer seconds than this remain
KEEPER_REFRESH_MARGIN = 10 * 60
# update: the profile is rewritten once fewer seconds than this remain
UPDATE_REFRESH_MARGIN = 5 * 60
# while a refresh fails, a keeper hands out its last good credentials until this much remains
LAST_GOOD_MARGIN = 60
# credential-process --cache: an entry is reused while more than min(this, half its lifetime)
# seconds remain (botocore runs credential_process again once 15 minutes remain; half the
# lifetime keeps 900-second sessions cacheable). While a refresh fails, an entry is still handed
# out, with a warning, while more than LAST_GOOD_MARGIN remains. The agent, whose clients are
# credential_process clients too, refreshes its keeper at the same margin.
CACHE_REUSE_MARGIN = 15 * 60

__all__ = [
    "CACHE_REUSE_MARGIN",
    "KEEPER_REFRESH_MARGIN",
    "LAST_GOOD_MARGIN",
    "UPDATE_REFRESH_MARGIN",
]
