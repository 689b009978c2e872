import sys
from pathlib import Path

# Lets the tests import the plain reference implementation in tests/reference.py.
sys.path.insert(0, str(Path(__file__).parent))
