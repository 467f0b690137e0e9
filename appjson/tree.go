package appjson

// KeyTree is the driver option naming a whole tree.
const KeyTree = "tree"
