"""What an author uses while writing policies and their tests: the policy tests runner and its
coverage (policytests), scaffolding a new policy, and what an editor asks of a policy (editing)
with the language server that answers it (lsp).

It does not define the language (medpol.dsl), check or compile it (medpol.compiler), or decide
claims (medpol.engine); the command line's `test`, `new`, `fmt` and `lsp` live in medpol.cli.
"""
