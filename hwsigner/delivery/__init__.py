"""The four outputs of one credential, side by side, and the margins that decide their refresh.

- ``keeper``: one set of credentials kept fresh for many readers (single flight, last good);
- ``cache``: ``credential-process --cache``, on disk;
- ``credfile``: the shared credentials file, and ``update``'s loop;
- ``endpoints``: the local IMDSv2 and container endpoints of ``serve``;
- ``boto``: the botocore credential provider behind ``hwsigner.boto3_session``.

The margins below are every delivery mode's answer to "how close to expiry is too close", in
seconds, named for what each decides; this is the one table of DESIGN.md section 10 (L is the
credentials' lifetime as issued, 900 to 43200 seconds):

- a keeper (``serve``, the Python API, ``update``'s loop with its own margin) refreshes at a
  random point between L/2 and L - ``KEEPER_REFRESH_MARGIN`` after issue, and at L/2 when L is
  under twice the margin: clients always see more than 15 minutes left where L allows
  (botocore refreshes, or stretches, credentials with less), and a fleet's refreshes spread
  over a window instead of landing together;
- a failed refresh hands out the last good credentials while more than ``LAST_GOOD_MARGIN``
  remains, retrying after a doubling pause (1 s to 60 s) drawn at random from its upper half.

The arithmetic of the quota (CreateSession: 10 requests per second per account and region):
with L = 3600 s a device refreshes in a window of 3600 - 900 - 3600/2 = 900 s, so N devices
that got credentials in the same second spread their next N calls over 900 s: 10 x 900 = 9,000
devices per account and region fit even then; afterwards each device calls once every 1,800 to
2,700 s, so 18,000 devices (all at the shortest interval) to 22,500 (on average) at the quota.
With L = 43200 s the window is 20,700 s: 207,000 devices. The first calls of devices that boot
together are not spread: throttled calls back off (jittered) and retry.

This module imports nothing: a cached ``credential-process`` reads ``CACHE_REUSE_MARGIN``.
"""

# a keeper refreshes at a random point between half the lifetime and this long before expiry
KEEPER_REFRESH_MARGIN = 15 * 60
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
