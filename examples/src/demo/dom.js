// Building and placing elements (text only: nothing from an answer is
// ever parsed as HTML).

export function el(tag, props, children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of [].concat(children || [])) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

export function badge(text, tone) {
  return el("span", { class: "badge " + tone, text });
}

/** Makes `items` the children of `list`, in order, moving only what is out
 * of place (so that a note being typed keeps its focus). */
export function placeChildren(list, items) {
  for (const child of [...list.children]) {
    if (!items.includes(child)) child.remove();
  }
  let previous = null;
  for (const item of items) {
    const expected = previous ? previous.nextElementSibling : list.firstElementChild;
    if (expected !== item) {
      if (previous) previous.after(item);
      else list.prepend(item);
    }
    previous = item;
  }
}
