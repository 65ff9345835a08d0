use wyrmhole::Model;

#[derive(Model)]
struct TodoList {
    id: i32,
}

#[derive(Model)]
struct TodoItem {
    id: i32,
    // `TodoList`'s key is an i32: no list could ever match.
    #[wyrm(belongs_to = TodoList)]
    list_id: i64,
}

fn main() {}
