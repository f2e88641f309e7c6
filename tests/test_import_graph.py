"""The package's modules import each other without a cycle, function-local imports included (a cycle hidden
inside a function still ties two modules into one)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / 'fnf_basicsr'


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix('').parts)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imported_modules(path, modules):
    """The package modules ``path`` imports anywhere in its body (``from a import b`` counts ``a.b`` when that
    is a module, else ``a``); the package's ``__init__`` (which registers everything) is left out."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f'{node.module}.{alias.name}' if f'{node.module}.{alias.name}' in modules else node.module
                     for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in modules and name != 'fnf_basicsr')
    return found


def import_graph():
    paths = {module_name(path): path for path in PACKAGE.rglob('*.py')}
    return {name: imported_modules(path, set(paths)) - {name} for name, path in paths.items()}


def find_cycle(graph):
    """One cycle as a list of module names, or None (depth-first search)."""
    state, stack = {}, []

    def visit(node):
        state[node] = 'open'
        stack.append(node)
        for child in sorted(graph.get(node, ())):
            if state.get(child) == 'open':
                return stack[stack.index(child):] + [child]
            if child not in state:
                cycle = visit(child)
                if cycle:
                    return cycle
        state[node] = 'done'
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert 'fnf_basicsr.data.dataset_options' in graph['fnf_basicsr.data.fnf_dataset']  # the graph is read
    cycle = find_cycle(graph)
    assert cycle is None, ' -> '.join(cycle)


def test_the_cycle_finder_finds_a_hidden_cycle():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': set(), 'c': {'a', 'b'}}) is None
