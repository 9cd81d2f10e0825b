/**
 * A set ordered by a comparator that tells in O(log n) how many of its entries come before a
 * given one: a treap (a binary search tree balanced by random priorities) whose nodes keep their
 * subtree's size. Entries must be distinct under the comparator. Its operations allocate nothing
 * but the node of an insert: a queue of a million items passes through it on the event loop.
 */

interface Node<T> {
  readonly item: T;
  readonly priority: number;
  size: number;
  left: Node<T> | null;
  right: Node<T> | null;
}

const sizeOf = <T>(node: Node<T> | null): number => (node === null ? 0 : node.size);

/** See the file comment. */
export class RankTree<T> {
  #root: Node<T> | null = null;
  /** The two halves of the last {@link RankTree.#split}. */
  #lower: Node<T> | null = null;
  #upper: Node<T> | null = null;

  constructor(private readonly before: (a: T, b: T) => boolean) {}

  /** Entries held. */
  get size(): number {
    return sizeOf(this.#root);
  }

  /** The first entry, O(log n) expected. */
  first(): T | undefined {
    let node = this.#root;
    if (node === null) return undefined;
    while (node.left !== null) node = node.left;
    return node.item;
  }

  /** Removes and returns the first entry, O(log n) expected. */
  shift(): T | undefined {
    let node = this.#root;
    if (node === null) return undefined;
    let parent: Node<T> | null = null;
    while (node.left !== null) {
      node.size--;
      parent = node;
      node = node.left;
    }
    if (parent === null) this.#root = node.right;
    else parent.left = node.right;
    return node.item;
  }

  /** Adds `item`, O(log n) expected. */
  insert(item: T): void {
    const node: Node<T> = { item, priority: Math.random(), size: 1, left: null, right: null };
    this.#root = this.#insert(this.#root, node);
  }

  /** Removes `item` (the same entry); false when it is not held. O(log n) expected. */
  delete(item: T): boolean {
    this.#root = this.#delete(this.#root, item);
    return this.#deleted;
  }

  /** How many entries come before `item` (held or not), O(log n) expected. */
  rank(item: T): number {
    let count = 0;
    let node = this.#root;
    while (node !== null) {
      if (this.before(node.item, item)) {
        count += sizeOf(node.left) + 1;
        node = node.right;
      } else node = node.left;
    }
    return count;
  }

  #insert(tree: Node<T> | null, node: Node<T>): Node<T> {
    if (tree === null) return node;
    if (node.priority > tree.priority) {
      this.#split(tree, node.item);
      node.left = this.#lower;
      node.right = this.#upper;
      node.size = 1 + sizeOf(node.left) + sizeOf(node.right);
      this.#lower = this.#upper = null;
      return node;
    }
    if (this.before(node.item, tree.item)) tree.left = this.#insert(tree.left, node);
    else tree.right = this.#insert(tree.right, node);
    tree.size++;
    return tree;
  }

  /** Set by {@link RankTree.#delete}: whether it found the entry. */
  #deleted = false;

  #delete(tree: Node<T> | null, item: T): Node<T> | null {
    this.#deleted = false;
    if (tree === null) return null;
    if (tree.item === item) {
      this.#deleted = true;
      return this.#merge(tree.left, tree.right);
    }
    if (this.before(item, tree.item)) tree.left = this.#delete(tree.left, item);
    else if (this.before(tree.item, item)) tree.right = this.#delete(tree.right, item);
    else return tree;
    if (this.#deleted) tree.size--;
    return tree;
  }

  /** Splits `node` into the entries before `item` (`#lower`) and the others (`#upper`). */
  #split(node: Node<T> | null, item: T): void {
    if (node === null) {
      this.#lower = this.#upper = null;
      return;
    }
    if (this.before(node.item, item)) {
      this.#split(node.right, item);
      node.right = this.#lower;
      node.size = 1 + sizeOf(node.left) + sizeOf(node.right);
      this.#lower = node;
      return;
    }
    this.#split(node.left, item);
    node.left = this.#upper;
    node.size = 1 + sizeOf(node.left) + sizeOf(node.right);
    this.#upper = node;
  }

  /** Joins two trees whose every entry of `a` comes before every entry of `b`. */
  #merge(a: Node<T> | null, b: Node<T> | null): Node<T> | null {
    if (a === null) return b;
    if (b === null) return a;
    if (a.priority > b.priority) {
      a.right = this.#merge(a.right, b);
      a.size = 1 + sizeOf(a.left) + sizeOf(a.right);
      return a;
    }
    b.left = this.#merge(a, b.left);
    b.size = 1 + sizeOf(b.left) + sizeOf(b.right);
    return b;
  }
}
