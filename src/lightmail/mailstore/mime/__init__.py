"""MIME, parsed once while a message streams in (sans-I/O: no asyncio, no storage).

One module per concern; each imports only those before it in this list:

- `headers`: header fields (RFC 5322 section 2.2) and the shared lexical pieces.
- `words`: charsets and RFC 2047 encoded words.
- `params`: Content-* parameters (RFC 2045 section 5.1) and RFC 2231.
- `codec`: the shape checks of the value types' JSON form.
- `types`: the value types (`Envelope`, `BodyPart`, `ParsedMessage` ...).
- `addresses`: address fields (RFC 5322 section 3.4), ENVELOPE, `search_addresses`.
- `content`: the Content-* fields of a header block (RFC 2045, 2046, 2183).
- `transfer`: Content-Transfer-Encoding undone in chunks (RFC 2045 section 6).
- `delimiters`: the patterns that find boundary delimiter lines (RFC 2046 5.1.1).
- `sorting`: what SORT and THREAD compare (RFC 5256, RFC 5957): base subject,
  i;unicode-casemap, normalized msg-ids.
- `scanner`: `MimeScanner`, the streaming structure scanner.
"""
