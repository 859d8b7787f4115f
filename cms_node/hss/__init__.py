"""The operator's subscriber database (HSS/AuC records) and its synthetic population.

``model.Subscriber`` is one record, ``store.SubscriberStore`` the interface the CMS uses,
``sqlite_store.SqliteSubscriberStore`` the embedded implementation and ``generator`` the seeded
synthetic population (ARCHITECTURE §4). Import the submodules directly; this package imports nothing
heavy on purpose.
"""
