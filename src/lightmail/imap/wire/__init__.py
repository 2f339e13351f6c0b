"""The IMAP wire layer (sans-I/O): bytes in, typed commands out; responses to bytes.

``receiver`` (events and ``Receiver``: the framing), ``grammar`` (one parse
function per command, by RFC area, and the table from verb to function) on
``parser`` (the shared productions), ``commands`` (one class per command),
``types`` (sequence sets, FETCH attributes, SEARCH keys), ``responses`` and
``mutf7`` (mailbox name codec). Import from those modules.
"""
