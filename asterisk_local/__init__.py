"""Asterisk 22 on this machine, without an Asterisk package: a Debian sid root folder
(`root`), the project's configuration and prompts installed into it (`install`), Asterisk
started, checked and stopped (`instance`, `logscan`, `supervise`), and a SIPp caller for
test calls (`caller`). `ivr12333 asterisk up|down|status` and `make run` use it; the
configuration itself is rendered by `dialplan`.
"""
