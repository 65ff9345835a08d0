use wyrmhole::Model;

#[derive(Model)]
struct TodoItem {
    #[wyrm(update)]
    id: i32,
    text: String,
}

#[derive(Model)]
struct TodoList {
    #[wyrm(primary_key, update)]
    slug: String,
}

fn main() {}
