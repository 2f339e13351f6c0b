"""CalDAV (RFC 4791 over WebDAV, RFC 4918): each user's calendars over HTTP.

:mod:`.app` logs in and routes by method, :mod:`.methods` and :mod:`.reports`
answer them through the calendar store (:mod:`lightmail.calendars`), never
SQL or the blob store; :mod:`.resources` is the URL space and the
properties, :mod:`.xml` the hardened parser and the multistatus writer;
:mod:`.server` puts the app on its listeners.
"""
