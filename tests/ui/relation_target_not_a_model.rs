use wyrmhole::Model;

/// Not a `Model`: a relation cannot point at it.
struct TodoList {
    id: i32,
}

/// Not a `Model` either.
struct Tag {
    item_id: i32,
}

#[derive(Model)]
#[wyrm(has_many(tags = Tag, via = item_id))]
struct TodoItem {
    id: i32,
    #[wyrm(belongs_to = TodoList)]
    list_id: i32,
}

fn main() {
    let _ = (TodoList { id: 1 }.id, Tag { item_id: 1 }.item_id);
}
