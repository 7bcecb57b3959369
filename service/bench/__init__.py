"""`qa bench`: build and query speed, measured on this machine.

``run`` drives the whole benchmark; ``scale`` synthesises large indexes and
times searches on them in a child process; ``http_load`` and ``wrk`` load a real
``qa serve``; ``peer`` is the LangChain baseline; ``report`` checks the
targets and renders the Markdown table.
"""
