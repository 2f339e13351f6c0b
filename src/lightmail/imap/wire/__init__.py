"""The IMAP wire layer (sans-I/O): bytes in, typed commands out; responses to bytes.

``receiver`` (events and ``Receiver``), ``commands`` (one class per command),
``types`` (sequence sets, FETCH attributes, SEARCH keys), ``responses`` and
``mutf7`` (mailbox name codec). Import from those modules.
"""
