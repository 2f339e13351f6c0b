"""Calendars: collections of iCalendar objects whose ``.ics`` bytes live in the blob store.

:mod:`.store` is the only code that changes them (as the mailstore is for
mail); :mod:`.ics` checks an object once when it is stored and matches
objects against time ranges. CalDAV (:mod:`lightmail.dav`) serves them.
"""
