"""Joint training: every context's data at once for the same total number of iterations. The upper bound.

The loop trains one stage over the union of all contexts (iterations x contexts steps), so the accuracy
matrix has a single row; forgetting and transfer are undefined for it and reported as None.
"""

from core.methods.parts.base import Method
from core.schema.params import JointParams


class Joint(Method[JointParams]):
    trains_jointly = True
