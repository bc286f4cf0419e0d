"""Frozen saga versions that workers keep running for the payments started under them.

A saga changed in a way its recorded histories cannot replay, and cheaper without its patches,
gets a new workflow type; its previous type stays here, unchanged, registered beside it, until
no workflow of that type is open (the Temporal UI: `WorkflowType="Deposit" AND
ExecutionStatus="Running"`). The replay test replays the histories recorded under it.
"""
