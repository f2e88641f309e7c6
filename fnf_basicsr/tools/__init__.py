"""The commands behind scripts/: ``scripts/<group>/<name>.py`` only calls ``fnf_basicsr.tools.<name>.main``.

Each module holds its command's one argument parser and ``main(argv=None)``, so that tests call
``main([...])`` and ``python -m fnf_basicsr.tools.<name>`` runs the same command.
"""
