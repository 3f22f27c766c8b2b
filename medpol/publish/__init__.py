"""The published policy site: pages built from the compiled policies (site), their rules said in
plain language for providers (plain), and the Pygments lexer that highlights policy text on
the site (highlight).

It does not decide claims (medpol.engine) or diff versions (medpol.history); it renders their
results. The site's own configuration, page templates and theme live in the repository's site/.
"""
