"""The foundation every layer shares (models, components, serving): the params loader, atomic file
writes, the JSON cleaner and the names of splits and metrics. It imports no ML or MLOps library."""
