"""Go semantics the validators must reproduce exactly: a leaf that imports nothing of the project.

Kuma is written in Go, and whether it accepts a field often comes down to what a Go library
accepts: `net.ParseIP`, `url.ParseRequestURI`, `regexp.Compile` (RE2), `encoding/json`'s
base64, and `text/template`. A commit Kuma would refuse must not pass here, so these live in
one place, named after the Go package they mirror, and tested against Go's own tables.

Why `template` is a full port and not a subset: Kuma v2.14.3 hands these fields to the full
`text/template` (`template.New("").Funcs({"label": ...}).Parse(s)` in
`meshidentity/api/v1alpha1/validator.go`, `hostnamegenerator/api/v1alpha1/validate.go`, then
`Execute` with a stub struct and `helpers.go` renderTemplate). Any action, pipeline, builtin
function or `define`/`block` a user writes is accepted or refused by that parser; a subset
would refuse templates Kuma applies or accept ones Kuma refuses. So the port stays complete
but isolated here, split into lexer, parser and executor modules under 400 lines each, and
`tests/gocompat/` runs it against tables written from Go's `lex_test.go`, `parse_test.go`
and `exec_test.go`.

- `template`: Go's text/template (parse and execute over a record of strings).
- `net`: net.ParseIP, net.SplitHostPort, url.ParseRequestURI, govalidator.IsDNSName.
- `regexp`: why RE2 would refuse a pattern.
- `encoding`: the base64 that encoding/json accepts for `[]byte`.
"""
