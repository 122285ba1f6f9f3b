"""What the tests share: model builders, independent references, sandboxes and build helpers.

Each module here is imported by the tests as ``support.<module>``; none of it is a test.
"""
